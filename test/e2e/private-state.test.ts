import {chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

const NOBODY = 65534
const mode = (file: string): string => (statSync(file).mode & 0o777).toString(8)

interface Status {
  name: string
  state: string
}

/** End-to-end: who may touch a machine's state, with the built CLI, real QEMU and the tiny box. */
describe('private state and a trusted runtime directory (tiny box)', () => {
  let fixture: MachineFixture
  let project: string
  let home: string
  const status = async (env: NodeJS.ProcessEnv = {}, cwd = project): Promise<Status[]> =>
    JSON.parse((await fixture.run(['status', '--json', '--cwd', cwd], env)).stdout).result.machines

  beforeAll(() => {
    fixture = machineFixture('private', 'tiny')
    ;({project, home} = fixture)
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\n')
  })

  afterAll(() => fixture.cleanup())

  it('vm up refuses a runtime directory another user created, naming it; nothing runs and nothing is written there', async () => {
    const runtime = path.join(home, 'foreign-run')
    mkdirSync(runtime, {mode: 0o700})
    chownSync(runtime, NOBODY, NOBODY)
    const up = await fixture.run(['up'], {VM_RUNTIME_DIR: runtime})
    expect(up.code, up.stderr).toBe(1)
    expect(up.stderr).toContain(`Refusing to use ${runtime}`)
    expect(up.stderr).toContain(`owner uid ${NOBODY}`)
    expect(readdirSync(runtime)).toEqual([])
    expect((await status({VM_RUNTIME_DIR: runtime}))[0]?.state).not.toBe('running')
  })

  it('a group-writable runtime directory is refused too', async () => {
    const runtime = path.join(home, 'shared-run')
    mkdirSync(runtime)
    chmodSync(runtime, 0o775)
    const up = await fixture.run(['up'], {VM_RUNTIME_DIR: runtime})
    expect(up.code, up.stderr).toBe(1)
    expect(up.stderr).toContain(`Refusing to use ${runtime}: others can write into it`)
    expect(readdirSync(runtime)).toEqual([])
  })

  it('a booted machine keeps its state private: directories 0700, disks, keys and records 0600', async () => {
    // Wider modes left by an older vm (or a umask) are narrowed.
    mkdirSync(path.join(project, '.vm/machines'), {recursive: true})
    chmodSync(path.join(project, '.vm'), 0o755)
    chmodSync(path.join(project, '.vm/machines'), 0o755)
    mkdirSync(path.join(home, 'run'), {recursive: true})
    chmodSync(path.join(home, 'run'), 0o755)
    const up = await fixture.run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect((await status())[0]?.state).toBe('running')
    const machine = path.join(project, '.vm/machines/default')
    expect(mode(project)).toBe('755')
    expect(mode(path.join(project, '.vm'))).toBe('700')
    expect(mode(path.join(project, '.vm/machines'))).toBe('700')
    expect(mode(machine)).toBe('700')
    expect(mode(path.join(machine, 'disk0.qcow2'))).toBe('600')
    expect(mode(path.join(machine, 'id_ed25519'))).toBe('600')
    expect(mode(path.join(machine, 'machine.json'))).toBe('600')
    expect(mode(path.join(machine, 'qemu.stderr'))).toBe('600')
    const runtime = path.join(home, 'run')
    expect(mode(runtime)).toBe('700')
    expect(mode(path.join(runtime, 'ports'))).toBe('700')
    const leases = readdirSync(path.join(runtime, 'ports')).filter((file) => file.endsWith('.lease'))
    expect(leases.length).toBeGreaterThan(0)
    for (const lease of leases) expect(mode(path.join(runtime, 'ports', lease))).toBe('600')
  })

  it('two projects forwarding the same host port at once: the second is told which port, protocol and machine', async () => {
    const down = await fixture.run(['destroy', '-f'])
    expect(down.code, down.stderr).toBe(0)
    // Two machines of one project may not share a host port (vm validate refuses it), so the
    // race is between two projects whose vm up run at the same moment.
    const other = `${project}-other`
    mkdirSync(other, {recursive: true})
    const vmfile = (guest: number): string => `box: vmfile/tiny\ncpus: 1\nmemory: 256\nforwarded_ports: [{guest: ${guest}, host: 46471}]\n`
    writeFileSync(path.join(project, 'Vmfile'), vmfile(8000))
    writeFileSync(path.join(other, 'Vmfile'), vmfile(8001))
    try {
      const ups = await Promise.all([fixture.run(['up']), fixture.run(['up', '--cwd', other])])
      expect(ups.map((up) => up.code).sort()).toEqual([0, 1])
      const failed = ups.find((up) => up.code === 1)!
      expect(failed.stderr).toMatch(
        /Host port 127\.0\.0\.1:46471\/tcp \(forwarded to guest port 800[01] of machine default\) is already in use/,
      )
      expect(failed.stderr).not.toContain('SSH port')
      const running = [...(await status()), ...(await status({}, other))].filter((machine) => machine.state === 'running')
      expect(running).toHaveLength(1)
    } finally {
      await fixture.run(['destroy', '-f', '--cwd', other])
      rmSync(other, {recursive: true, force: true})
    }
  })
})
