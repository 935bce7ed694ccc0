import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {writePlacement} from '../../src/driver/libvirt/placement.js'
import {statusProject} from '../../src/machine/fan-out.js'
import {createdMachine} from '../../src/machine/inspect.js'
import {loadProject} from '../../src/vmfile/index.js'

/**
 * A machine whose libvirt host cannot be reached: the real virsh against a URI where nothing
 * listens (qemu+tcp to a closed port on 127.0.0.1 is refused at once, as an unreachable
 * host is). vm status lists it as unknown with the reason and still shows the other machines;
 * a command that acts on it fails, naming the host.
 */
describe('status of a machine on an unreachable libvirt host', () => {
  let dir: string
  let home: string
  const saved = process.env.VM_HOME
  const uri = 'qemu+tcp://127.0.0.1:1/system'

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vm-lvdown-'))
    home = mkdtempSync(path.join(tmpdir(), 'vm-lvdown-home-'))
    process.env.VM_HOME = home
    writeFileSync(
      path.join(dir, 'Vmfile'),
      ['box: vmfile/tiny', 'machines:', '  a: {}', `  b: {provider: libvirt, libvirt: {uri: "${uri}"}}`, ''].join('\n'),
    )
    const config = loadProject(dir).machines.find((machine) => machine.name === 'b')!
    const machineDir = path.join(dir, '.vm', 'machines', 'b')
    mkdirSync(machineDir, {recursive: true})
    const record = {
      format: 1,
      id: 'lvdown0001',
      name: 'b',
      projectDir: dir,
      driver: 'libvirt',
      createdAt: new Date().toISOString(),
      box: {name: 'vmfile/tiny', version: '1.0.0', architecture: 'amd64', provider: 'libvirt', disks: []},
      config,
      macs: ['52:54:00:00:00:01'],
      lastState: 'running',
      libvirt: {uri, pool: 'default', domain: 'vm-b-lvdown0001'},
    }
    writeFileSync(path.join(machineDir, 'machine.json'), JSON.stringify(record))
    await writePlacement(machineDir, {uri, pool: 'default', network: 'vmfile', domain: 'vm-b-lvdown0001', volumes: []})
  })

  afterEach(() => {
    if (saved === undefined) delete process.env.VM_HOME
    else process.env.VM_HOME = saved
    rmSync(dir, {recursive: true, force: true})
    rmSync(home, {recursive: true, force: true})
  })

  it('status shows it as unknown with the reason naming the host; the other machine is listed too', async () => {
    const {machines} = await statusProject(dir, [])
    expect(machines.map((machine) => [machine.name, machine.state])).toEqual([
      ['a', 'not_created'],
      ['b', 'unknown'],
    ])
    expect(machines[1]!.problem).toMatch(
      /^Cannot reach libvirt host 127\.0\.0\.1 \(qemu\+tcp:\/\/127\.0\.0\.1:1\/system\) to read the state of domain vm-b-lvdown0001: /,
    )
    expect(machines[1]!.box).toEqual({name: 'vmfile/tiny', version: '1.0.0'})
  })

  it('a command that acts on it (ssh, halt) fails, naming the host', async () => {
    await expect(createdMachine(dir, 'b')).rejects.toThrow(/Cannot reach libvirt host 127\.0\.0\.1/)
  })
})
