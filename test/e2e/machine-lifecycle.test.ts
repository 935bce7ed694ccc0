import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startLibvirtHost, type LibvirtHost} from '../helpers/libvirt-host.js'
import {builtBox, insecureLoginWorks, installBox, machineFixture, root, vm, type MachineFixture} from '../helpers/vm-cli.js'

interface Status {
  name: string
  state: string
  ssh?: {host: string; port: number}
}

interface Engine {
  name: 'qemu' | 'libvirt'
  /** Starts what the engine needs; returns how vm is run for it. */
  setup(): Promise<{env: NodeJS.ProcessEnv; wrap: string[]; upArgs: string[]}>
  teardown(): Promise<void>
  /** How vm up reports the SSH endpoint. */
  endpoint: RegExp
  /** Kills the machine behind vm's back (SIGKILL of QEMU, virsh destroy of the domain). */
  kill(project: string): void
  /** Checks after destroy that the engine kept nothing of the machine but the box. */
  afterDestroy(): void
  /** Lines the engine's Vmfile adds to Vmfile.example. */
  vmfileExtra: string
  /** Checks, once the machine was killed behind vm's back, that nothing the engine kept for it runs on. */
  afterKill(project: string): Promise<void>
}

const alivePid = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

let lvHost: LibvirtHost | undefined

const qemuEngine: Engine = {
  name: 'qemu',
  setup: async () => ({env: {}, wrap: [], upArgs: []}),
  teardown: async () => {},
  endpoint: /\[default\] running: SSH on 127\.0\.0\.1:22\d\d/,
  kill(project) {
    process.kill(Number(readFileSync(path.join(project, '.vm/machines/default/qemu.pid'), 'utf8')), 'SIGKILL')
  },
  afterDestroy() {},
  vmfileExtra: '',
  afterKill: async () => {},
}

/**
 * The libvirt engine against a libvirtd of its own (test/helpers/libvirt-host.ts): the machine
 * is created by "vm up --provider libvirt" on the URI LIBVIRT_DEFAULT_URI names; vm runs in the
 * pretend host's network namespace, where the guests' NAT network is.
 */
const libvirtEngine: Engine = {
  name: 'libvirt',
  async setup() {
    lvHost = await startLibvirtHost({name: 'lvlife'})
    return {env: {LIBVIRT_DEFAULT_URI: lvHost.uri}, wrap: ['ip', 'netns', 'exec', lvHost.ns], upArgs: ['--provider', 'libvirt']}
  },
  teardown: async () => lvHost?.stop(),
  endpoint: /\[default\] running: SSH on 192\.168\.\d+\.\d+:22 /,
  kill(project) {
    const placement = JSON.parse(readFileSync(path.join(project, '.vm/machines/default/libvirt.json'), 'utf8'))
    expect(lvHost!.virsh(['destroy', placement.domain]).status).toBe(0)
  },
  afterDestroy() {
    const volumes = lvHost!
      // virsh vol-list has no --name: the first column of each line.
      .virsh(['vol-list', 'default'])
      .stdout.split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((name) => name !== '')
    // The box volume (and its completion marker) stays for the next machine; the machine's own are gone.
    expect(volumes.filter((volume) => volume.startsWith('vm-'))).toEqual([])
    expect(volumes.filter((volume) => /^vmbox-[0-9a-f]{32}\.qcow2$/.test(volume))).toHaveLength(1)
    expect(lvHost!.virsh(['list', '--all', '--name']).stdout.trim()).toBe('')
  },
  // The port keeper (a local TCP relay) runs from up; it must end with its domain.
  vmfileExtra: `forwarded_ports: [{guest: 22, host: ${24100 + (process.pid % 800)}}]\n`,
  async afterKill(project) {
    const {pid} = JSON.parse(readFileSync(path.join(project, '.vm/machines/default/forwarder.json'), 'utf8')) as {pid: number}
    const deadline = Date.now() + 15_000
    while (alivePid(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200))
    expect(alivePid(pid), 'the port keeper of the killed domain still runs').toBe(false)
  },
}

/**
 * End-to-end: the built CLI against real QEMU (TCG), qemu-img, OpenSSH and the tiny box, on each
 * engine. The two engines' blocks run at the same time (their own VM_HOME, project and machine;
 * SSH ports come from vm's host-wide leases), each one's steps in order.
 */
describe.concurrent.each([qemuEngine, libvirtEngine])('machine lifecycle with the tiny box on the $name engine', (engine) => {
  let fixture: MachineFixture
  let project: string
  let home: string
  let wrap: string[] = []
  let env: NodeJS.ProcessEnv = {}
  let upArgs: string[] = []
  const run = (args: string[]) => vm(args, {cwd: project, env: {...fixture.env, ...env}, wrap, timeoutMs: 240_000})
  const status = async (): Promise<Status[]> => JSON.parse((await run(['status', '--json'])).stdout).result.machines
  const state = async (): Promise<string | undefined> => (await status())[0]?.state
  /** Whether the box's insecure key alone logs in at the machine's SSH endpoint (from where vm runs). */
  const insecureLogin = async (): Promise<boolean> => {
    const ssh = (await status())[0]!.ssh!
    return insecureLoginWorks(home, ssh.port, {host: ssh.host, wrap})
  }

  beforeAll(async () => {
    fixture = machineFixture(`lifecycle-${engine.name}`, 'tiny', {projectPrefix: 'vm-e2e-project-'})
    ;({project, home} = fixture)
    writeFileSync(path.join(project, 'Vmfile'), readFileSync(path.join(root, 'Vmfile.example'), 'utf8') + engine.vmfileExtra)
    ;({env, wrap, upArgs} = await engine.setup())
  }, 120_000)

  afterAll(async () => {
    await run(['destroy', '-f']).catch(() => undefined)
    await fixture.cleanup()
    await engine.teardown()
  }, 120_000)

  it.sequential('up boots the machine and SSH works with exit codes passed through', async () => {
    expect(await state()).toBe('not_created')
    const start = Date.now()
    const up = await run(['up', ...upArgs])
    expect(up.code, up.stderr).toBe(0)
    console.log(`tiny (${engine.name}): vm up to SSH-ready in ${((Date.now() - start) / 1000).toFixed(1)} s (${up.stdout.trim()})`)
    expect(up.stdout).toMatch(engine.endpoint)
    expect((await run(['ssh', '-c', 'exit 7'])).code).toBe(7)
    expect((await run(['ssh', '-c', 'sudo -n id -u'])).stdout.trim()).toBe('0')
    expect(await state()).toBe('running')
  })

  it.sequential('the insecure key was replaced by a key of the machine, and the host key is pinned', async () => {
    const dir = path.join(project, '.vm/machines/default')
    expect(readFileSync(path.join(dir, 'known_hosts'), 'utf8')).toMatch(/ssh-ed25519|ecdsa-sha2|ssh-rsa/)
    expect(await insecureLogin()).toBe(false)
  })

  it.sequential('up on a running machine says so and does nothing else', async () => {
    const again = await run(['up'])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('already running')
  })

  it.sequential('halt, then up again keeps the data on the disk', async () => {
    expect((await run(['ssh', '-c', 'echo kept > ~/marker && sync'])).code).toBe(0)
    const halt = await run(['halt'])
    expect(halt.code, halt.stderr).toBe(0)
    expect(halt.stdout).toContain('[default] powered off')
    expect(await state()).toBe('poweroff')
    expect((await run(['up'])).code).toBe(0)
    expect((await run(['ssh', '-c', 'cat ~/marker'])).stdout.trim()).toBe('kept')
  })

  it.sequential("the machine killed behind vm's back is aborted, and up recovers", async () => {
    engine.kill(project)
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && (await state()) === 'running') await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await state()).toBe('aborted')
    await engine.afterKill(project)
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect((await run(['ssh', '-c', 'cat ~/marker'])).stdout.trim()).toBe('kept')
  })

  it.sequential('ssh-config is a Host block that works with ssh -F', async () => {
    const file = path.join(home, 'ssh_config')
    writeFileSync(file, (await run(['ssh-config', '--host', 'tinybox'])).stdout)
    const command = [...wrap, 'ssh', '-F', file, 'tinybox', 'echo via-config']
    const ssh = spawnSync(command[0]!, command.slice(1), {encoding: 'utf8'})
    expect(ssh.stdout.trim()).toBe('via-config')
  })

  it.sequential('destroy removes the machine but never the box', async () => {
    const destroy = await run(['destroy', '-f'])
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(await state()).toBe('not_created')
    const metadata = path.join(home, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/metadata.json')
    expect(readFileSync(metadata, 'utf8')).toContain('vmfile/tiny')
    engine.afterDestroy()
  })
})

describe('several machines and failures', () => {
  let home: string
  let project: string
  let env: NodeJS.ProcessEnv
  let blocker: Server

  beforeAll(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'vm-e2e-home-'))
    project = mkdtempSync(path.join(tmpdir(), 'vm-e2e-multi-'))
    env = {VM_HOME: home}
    installBox(builtBox('tiny'), path.join(home, 'data/boxes'), 'vmfile/tiny', '1.0.0')
    // A program holding the first free port of the SSH range: vm must skip it.
    blocker = createServer()
    for (let port = 2200; port < 2299; port++) {
      const ok = await new Promise<boolean>((resolve) => {
        blocker.once('error', () => resolve(false))
        blocker.listen(port, '127.0.0.1', () => resolve(true))
      })
      if (ok) break
    }
  })

  afterAll(async () => {
    await vm(['destroy', '-f'], {cwd: project, env})
    blocker.close()
    rmSync(project, {recursive: true, force: true})
    rmSync(home, {recursive: true, force: true})
  })

  it('two machines start in parallel with different MACs and SSH ports, skipping a taken port', async () => {
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 384\nmachines:\n  one: {primary: true}\n  two: {}\n')
    const run = (args: string[]) => vm(args, {cwd: project, env})
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toMatch(/\[one\] running/)
    expect(up.stdout).toMatch(/\[two\] running/)
    const machines: Array<Status & {ssh: {port: number}}> = JSON.parse((await run(['status', '--json'])).stdout).result.machines
    expect(machines.map((m) => m.state)).toEqual(['running', 'running'])
    const ports = machines.map((m) => m.ssh.port)
    expect(new Set(ports).size).toBe(2)
    expect(ports).not.toContain((blocker.address() as {port: number}).port)
    const macs = ['one', 'two'].map(
      (name) => JSON.parse(readFileSync(path.join(project, `.vm/machines/${name}/machine.json`), 'utf8')).macs[0],
    )
    expect(macs[0]).not.toBe(macs[1])
    for (const [index, name] of ['one', 'two'].entries()) {
      expect((await run(['ssh', name, '-c', 'cat /sys/class/net/eth0/address'])).stdout.trim()).toBe(macs[index])
    }
    expect((await run(['destroy', '-f'])).code).toBe(0)
  })

  it('a box whose kernel cannot boot fails within the timeout with the serial log tail', async () => {
    const tinyDir = path.join(home, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt')
    const metadata = JSON.parse(readFileSync(path.join(tinyDir, 'metadata.json'), 'utf8'))
    const broken = installBox(builtBox('tiny'), path.join(home, 'data/boxes'), 'broken', '1.0.0')
    rmSync(path.join(broken, 'metadata.json'), {force: true})
    writeFileSync(path.join(broken, 'metadata.json'), JSON.stringify({...metadata, cmdline: 'console=ttyS0 root=/dev/nothing panic=0'}))
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-e2e-broken-'))
    // The kernel prints its first lines within a second or two: a short boot_timeout is enough.
    writeFileSync(path.join(dir, 'Vmfile'), 'box: broken\ncpus: 1\nmemory: 256\nboot_timeout: 10\n')
    const start = Date.now()
    const up = await vm(['up'], {cwd: dir, env})
    const seconds = (Date.now() - start) / 1000
    console.log(`broken kernel: vm up failed after ${seconds.toFixed(1)} s`)
    expect(up.code).toBe(1)
    expect(up.stderr).toContain('serial log')
    expect(up.stderr).toMatch(/did not answer on SSH within 10 s|kernel panicked/)
    expect(up.stderr).toMatch(/\n +\| \[ *\d+\.\d+\] /) // the tail of the serial log
    expect(seconds).toBeLessThan(30)
    const machines: Status[] = JSON.parse((await vm(['status', '--json'], {cwd: dir, env})).stdout).result.machines
    expect(machines[0]?.state).toBe('poweroff')
    await vm(['destroy', '-f'], {cwd: dir, env})
    rmSync(dir, {recursive: true, force: true})
  })
})

describe('the machine key across hard stops', () => {
  let fixture: MachineFixture
  const run = (args: string[]) => fixture.run(args)

  beforeAll(() => {
    fixture = machineFixture('keys', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nsynced_folders: false\n')
  })

  afterAll(() => fixture.cleanup())

  it('a machine stopped hard right after its first boot still takes its own key', async () => {
    expect((await run(['up'])).code).toBe(0)
    expect((await run(['halt', '-f'])).code).toBe(0)
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
  })

  it('a guest that refuses the key fails soon with a message that says so, not at boot_timeout', async () => {
    expect((await run(['ssh', '-c', 'rm ~/.ssh/authorized_keys && sync'])).code).toBe(0)
    expect((await run(['halt', '-f'])).code).toBe(0)
    const start = Date.now()
    // vm waits out a refused key for 20 s (a guest may add it late); VM_KEY_REFUSED_MS shortens that here.
    const up = await fixture.run(['up'], {VM_KEY_REFUSED_MS: '2000'})
    expect(up.code).toBe(1)
    expect(up.stderr).toContain('The machine answers on SSH but refuses user vm with the key vm offered')
    expect(up.stderr).toContain(`keys tried, in order:`)
    expect(up.stderr).toContain('Permission denied (publickey)')
    expect(Date.now() - start).toBeLessThan(120_000)
    const status = JSON.parse((await run(['status', '--json'])).stdout).result.machines[0]
    expect(status.state).toBe('poweroff')
  })
})
