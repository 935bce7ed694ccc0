import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {consoleLogVolume, extraVolumes, seedVolume} from '../../src/driver/libvirt/console.js'
import {libvirtDriver} from '../../src/driver/libvirt/driver.js'
import {writePlacement, type Placement} from '../../src/driver/libvirt/placement.js'

/** The serial console of libvirt domains, here and on remote hosts (no daemon: what the driver hands vm console). */
describe('libvirt serial console', () => {
  let dir: string
  const placement = (uri: string): Placement => ({
    uri,
    pool: 'default',
    network: 'vmfile',
    domain: 'vm-web-abc123',
    volumes: ['vm-abc123-disk0.qcow2'],
  })
  const machine = () => ({name: 'web', dir, id: 'abc123', record: undefined})

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vm-lvconsole-'))
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('attaches with virsh console over the machine URI, on a local host too (no socket of its own)', async () => {
    await writePlacement(dir, placement('qemu:///system'))
    const found = await libvirtDriver.serialConsole!(machine())
    expect(found.socket).toBeUndefined()
    expect(found.attach?.args).toEqual(['-c', 'qemu:///system', 'console', 'vm-web-abc123'])
    // A local daemon writes the log into the machine's directory: read as a file.
    expect(found.readLog).toBeUndefined()
    expect(found.log).toBe(path.join(dir, 'serial.log'))
  })

  it('reads a remote domain log through the libvirt connection', async () => {
    await writePlacement(dir, placement('qemu+ssh://root@build-3/system'))
    const found = await libvirtDriver.serialConsole!(machine())
    expect(found.attach?.args).toEqual(['-c', 'qemu+ssh://root@build-3/system', 'console', 'vm-web-abc123'])
    expect(found.readLog).toBeTypeOf('function')
    // No log volume made yet (never booted since): an empty log, without asking the host.
    expect(await found.readLog!()).toBe('')
  })

  it('names the console log and seed volumes after the machine id; destroy removes them with the disks', () => {
    expect(consoleLogVolume('abc123')).toBe('vm-abc123-serial.log')
    expect(seedVolume('abc123')).toBe('vm-abc123-cidata.iso')
    const full: Placement = {
      ...placement('qemu+ssh://h/system'),
      consoleLog: {volume: 'vm-abc123-serial.log', path: '/p/vm-abc123-serial.log'},
      seed: {volume: 'vm-abc123-cidata.iso', path: '/p/vm-abc123-cidata.iso'},
    }
    expect(extraVolumes(full)).toEqual(['vm-abc123-serial.log', 'vm-abc123-cidata.iso'])
    expect(extraVolumes(placement('qemu:///system'))).toEqual([])
  })
})
