import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {insecureLoginWorks, machineFixture, root, vm, type MachineFixture} from '../helpers/vm-cli.js'

const VMFILE = 'box: vmfile/tiny\ncpus: 1\nmemory: 256\n'

// Each describe block has its own VM_HOME, projects and machines: the blocks run at the same
// time (describe.concurrent), the steps inside each one in order (it.sequential).
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the process runs (a zombie left for a container's init to reap has exited). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

function qemuPid(project: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(project, '.vm/machines/default/qemu.pid'), 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** `vm up` as a child we can signal; resolves with its exit code and output. */
function startUp(fixture: MachineFixture): {
  child: ChildProcess
  done: Promise<{code: number | null; signal: string | null; stderr: string}>
} {
  const child = spawn(process.execPath, [path.join(root, 'bin/run.js'), 'up'], {
    cwd: fixture.project,
    env: {...process.env, NO_COLOR: '1', ...fixture.env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stdout!.resume()
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const done = new Promise<{code: number | null; signal: string | null; stderr: string}>((resolve) =>
    child.on('close', (code, signal) => resolve({code, signal, stderr})),
  )
  return {child, done}
}

interface Status {
  name: string
  state: string
  ssh?: {port: number}
  problem?: string
}

describe.concurrent('an interrupted first boot never leaves the insecure key trusted', () => {
  let fixture: MachineFixture
  const status = async (): Promise<Status> => JSON.parse((await fixture.run(['status', '--json'])).stdout).result.machines[0]

  beforeAll(() => {
    fixture = machineFixture('interrupt', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
  })
  afterAll(() => fixture.cleanup())

  it.sequential('Ctrl-C while vm up waits for SSH stops the QEMU it started; vm ssh meanwhile says a vm up is booting it', async () => {
    const up = startUp(fixture)
    const pid = await waitFor('QEMU to start', () => qemuPid(fixture.project))
    const ssh = await fixture.run(['ssh', '-c', 'true'])
    expect(ssh.code).not.toBe(0)
    expect(ssh.stderr).toMatch(/still booting: vm up \(pid \d+\) is finishing its first boot/)
    up.child.kill('SIGINT')
    const result = await up.done
    expect(result.code, result.stderr).toBe(130)
    expect(result.stderr).toContain('had not finished booting, so vm stopped it')
    expect(alive(pid)).toBe(false)
    expect((await status()).state).toBe('poweroff')
  })

  it.sequential('vm up killed outright leaves QEMU running: vm ssh says to run vm up, and vm up finishes the first boot', async () => {
    const up = startUp(fixture)
    const pid = await waitFor('QEMU to start', () => qemuPid(fixture.project))
    up.child.kill('SIGKILL')
    await up.done
    expect(alive(pid)).toBe(true)
    const port = (await status()).ssh!.port
    // The guest still trusts the box's key until a vm up replaces it.
    await waitFor('the guest to answer', () => insecureLoginWorks(fixture.home, port) || undefined, 90_000)
    const ssh = await fixture.run(['ssh', '-c', 'true'])
    expect(ssh.code).not.toBe(0)
    expect(ssh.stderr).toContain('first boot did not finish')
    expect(ssh.stderr).toContain('Run "vm up default" to finish it.')
    expect(ssh.stderr).not.toContain('still booting')
    expect((await status()).problem).toContain('boot not finished')
    const again = await fixture.run(['up'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).not.toContain('already running')
    expect(again.stdout).toContain('finishing it')
    expect(qemuPid(fixture.project)).toBe(pid)
    expect(insecureLoginWorks(fixture.home, port)).toBe(false)
    expect(await fixture.guest('echo in')).toBe('in')
    expect((await fixture.run(['up'])).stdout).toContain('already running')
  })
})

describe.concurrent('a corrupt machine.json', () => {
  let fixture: MachineFixture
  let other: string
  let saved: string
  const record = (): string => path.join(fixture.project, '.vm/machines/default/machine.json')
  const corrupt = (): void => writeFileSync(record(), '{"format": 1, "id": "garb\u0000age')

  beforeAll(async () => {
    fixture = machineFixture('corrupt', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
    other = mkdtempSync(path.join(tmpdir(), 'vm-e2e-corrupt-other-'))
    writeFileSync(path.join(other, 'Vmfile'), VMFILE)
    const [up, upOther] = await Promise.all([fixture.run(['up']), vm(['up'], {cwd: other, env: fixture.env})])
    expect(up.code, up.stderr).toBe(0)
    expect(upOther.code, upOther.stderr).toBe(0)
    saved = readFileSync(record(), 'utf8')
  })
  afterAll(async () => {
    await vm(['destroy', '-f'], {cwd: other, env: fixture.env})
    rmSync(other, {recursive: true, force: true})
    await fixture.cleanup()
  })

  it.sequential('status shows the machine as unknown with the file; global-status still lists every project', async () => {
    const pid = qemuPid(fixture.project)!
    corrupt()
    const human = await fixture.run(['status'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/default\s+unknown/)
    expect(human.stderr).toContain(record())
    expect(human.stderr).toContain(`its QEMU is running (pid ${pid})`)
    const json = JSON.parse((await fixture.run(['status', '--json'])).stdout)
    expect(json.result.machines[0].state).toBe('unknown')
    const global = await fixture.run(['global-status', '--json'])
    expect(global.code, global.stderr).toBe(0)
    const machines = JSON.parse(global.stdout).result.machines as Array<{projectDir: string; state: string}>
    expect(machines.find((machine) => machine.projectDir === other)?.state).toBe('running')
    expect(machines.find((machine) => machine.projectDir === fixture.project)?.state).toBe('unknown')
  })

  it.sequential('up and ssh are user errors that name the file and the way out', async () => {
    for (const args of [['up'], ['ssh', '-c', 'true']]) {
      const result = await fixture.run(args)
      expect(result.code, result.stderr).toBe(1)
      expect(result.stderr).toContain(`The machine record ${record()} is unreadable`)
      expect(result.stderr).toContain('vm destroy -f default')
    }
  })

  it.sequential('halt still stops its QEMU', async () => {
    const pid = qemuPid(fixture.project)!
    const halt = await fixture.run(['halt', '-f'])
    expect(halt.code, halt.stderr).toBe(0)
    expect(alive(pid)).toBe(false)
    expect((await fixture.run(['status'])).stderr).toContain('its QEMU is not running')
  })

  it.sequential('destroy -f stops a running QEMU and removes the machine', async () => {
    writeFileSync(record(), saved)
    expect((await fixture.run(['up'])).code).toBe(0)
    const pid = qemuPid(fixture.project)!
    corrupt()
    const destroy = await fixture.run(['destroy', '-f'])
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(alive(pid)).toBe(false)
    expect(existsSync(path.join(fixture.project, '.vm/machines/default'))).toBe(false)
    const global = JSON.parse((await fixture.run(['global-status', '--json'])).stdout).result.machines as Array<{projectDir: string}>
    expect(global.map((machine) => machine.projectDir)).toEqual([other])
  })
})

describe.concurrent('a moved project', () => {
  let fixture: MachineFixture
  let moved: string
  const otherRuntime = {VM_RUNTIME_DIR: ''}
  const inMoved = (args: string[], env: NodeJS.ProcessEnv = {}) => vm(args, {cwd: moved, env: {...fixture.env, ...env}})

  beforeAll(() => {
    fixture = machineFixture('moved', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
    moved = `${fixture.project}-moved`
    otherRuntime.VM_RUNTIME_DIR = mkdtempSync(path.join(tmpdir(), 'vm-e2e-other-run-'))
  })
  afterAll(async () => {
    if (existsSync(moved)) {
      await inMoved(['destroy', '-f'])
      renameSync(moved, fixture.project)
    }
    rmSync(otherRuntime.VM_RUNTIME_DIR, {recursive: true, force: true})
    await fixture.cleanup()
  })

  it.sequential('a running machine is still running after mv, also seen from another runtime directory', async () => {
    expect((await fixture.run(['up'])).code).toBe(0)
    const pid = qemuPid(fixture.project)!
    renameSync(fixture.project, moved)
    for (const env of [{}, otherRuntime]) {
      const status = JSON.parse((await inMoved(['status', '--json'], env)).stdout).result.machines[0]
      expect(status.state).toBe('running')
      expect(status.pid).toBe(pid)
    }
    expect((await inMoved(['ssh', '-c', 'echo moved'])).stdout.trim()).toBe('moved')
  })

  it.sequential('halt from another runtime directory stops it and re-registers the project', async () => {
    const pid = qemuPid(moved)!
    const halt = await inMoved(['halt'], otherRuntime)
    expect(halt.code, halt.stderr).toBe(0)
    expect(halt.stdout).toContain('[default] powered off')
    expect(halt.stderr).toContain(`the project moved from ${fixture.project} to ${moved}`)
    expect(alive(pid)).toBe(false)
    const global = JSON.parse((await inMoved(['global-status', '--json'])).stdout).result.machines as Array<{projectDir: string}>
    expect(global.map((machine) => machine.projectDir)).toEqual([moved])
  })

  it.sequential('the next boot shares the project from its new path', async () => {
    writeFileSync(path.join(moved, 'marker.txt'), 'new place\n')
    const up = await inMoved(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect((await inMoved(['ssh', '-c', 'cat /vm/marker.txt'])).stdout.trim()).toBe('new place')
  })

  it.sequential('a new project at the old path gets a machine of its own beside the moved one', async () => {
    mkdirSync(fixture.project)
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
    try {
      const up = await fixture.run(['up'])
      expect(up.code, up.stderr).toBe(0)
      const id = (dir: string): string => JSON.parse(readFileSync(path.join(dir, '.vm/machines/default/machine.json'), 'utf8')).id
      expect(id(fixture.project)).not.toBe(id(moved))
      for (const dir of [moved, fixture.project]) {
        const status = JSON.parse((await vm(['status', '--json'], {cwd: dir, env: fixture.env})).stdout).result.machines[0]
        expect(status.state).toBe('running')
      }
      const global = JSON.parse((await inMoved(['global-status', '--json'])).stdout).result.machines as Array<{projectDir: string}>
      expect(global.map((machine) => machine.projectDir).sort()).toEqual([fixture.project, moved].sort())
    } finally {
      await fixture.run(['destroy', '-f'])
      rmSync(fixture.project, {recursive: true, force: true})
    }
    // The moved machine is untouched by the other's destroy.
    const status = JSON.parse((await inMoved(['status', '--json'])).stdout).result.machines[0]
    expect(status.state).toBe('running')
  })

  it.sequential('destroy -f then removes it', async () => {
    const destroy = await inMoved(['destroy', '-f'])
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(qemuPid(moved)).toBeUndefined()
    expect(existsSync(path.join(moved, '.vm/machines/default'))).toBe(false)
  })
})

describe.concurrent('destroy -f of a moved project from another runtime directory', () => {
  let fixture: MachineFixture
  let moved: string
  let runtime: string

  beforeAll(() => {
    fixture = machineFixture('moved-destroy', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
    moved = `${fixture.project}-moved`
    runtime = mkdtempSync(path.join(tmpdir(), 'vm-e2e-other-run-'))
  })
  afterAll(async () => {
    if (existsSync(moved)) {
      await vm(['destroy', '-f'], {cwd: moved, env: fixture.env})
      renameSync(moved, fixture.project)
    }
    rmSync(runtime, {recursive: true, force: true})
    await fixture.cleanup()
  })

  it.sequential('stops the running QEMU before it deletes the disk', async () => {
    expect((await fixture.run(['up'])).code).toBe(0)
    const pid = qemuPid(fixture.project)!
    renameSync(fixture.project, moved)
    const destroy = await vm(['destroy', '-f'], {cwd: moved, env: {...fixture.env, VM_RUNTIME_DIR: runtime}})
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(alive(pid)).toBe(false)
    expect(existsSync(path.join(moved, '.vm/machines/default'))).toBe(false)
  })
})
