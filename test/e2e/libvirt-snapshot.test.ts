import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startLibvirtHost, type LibvirtHost} from '../helpers/libvirt-host.js'
import {builtBox, installBox, vm, type CliResult} from '../helpers/vm-cli.js'

function json<T>(stdout: string): T {
  return (JSON.parse(stdout) as {result: T}).result
}

interface Listed {
  snapshots: Array<{name: string; memory: boolean; memoryBytes: number; diskSizes: number[]}>
}

/**
 * Snapshots, suspend and resume on the libvirt engine: one tiny machine on a libvirtd of its
 * own (a pretend host in a network namespace, reached through its local socket; vm runs in that
 * namespace so that the guest's NAT address is reachable), its project folder mounted over 9p.
 */
describe('libvirt: snapshots and suspend of a tiny machine (9p folder at /vm)', () => {
  let host: LibvirtHost
  let home: string
  let project: string
  let domain: string
  const run = (args: string[]): Promise<CliResult> =>
    vm(args, {cwd: project, env: {VM_HOME: home}, wrap: ['ip', 'netns', 'exec', host.ns], timeoutMs: 240_000})
  const guest = async (command: string): Promise<string> => {
    const result = await run(['ssh', '-c', command])
    expect(result.code, result.stderr).toBe(0)
    return result.stdout.trim()
  }
  const virsh = (...args: string[]) => host.virsh(args)
  /** Guest time and uptime against the host's: the clock within 2 s, the uptime in seconds. */
  const clockAndUptime = async (): Promise<{skew: number; uptime: number}> => {
    const before = Date.now() / 1000
    const [now, uptime] = (await guest('date +%s; cut -d" " -f1 /proc/uptime')).split('\n')
    const after = Date.now() / 1000
    const skew = Number(now) < before - 2 ? Number(now) - before : Number(now) > after + 2 ? Number(now) - after : 0
    return {skew, uptime: Number(uptime)}
  }

  beforeAll(async () => {
    host = await startLibvirtHost({name: 'lvsnap'})
    home = mkdtempSync(path.join(tmpdir(), 'vm-e2e-lvsnap-home-'))
    project = mkdtempSync(path.join(tmpdir(), 'vm-e2e-lvsnap-'))
    chmodSync(project, 0o755) // as a project directory normally is (the guest's user reads it over 9p); mkdtemp makes it 0700
    installBox(builtBox('tiny'), path.join(home, 'data/boxes'), 'vmfile/tiny', '1.0.0')
    writeFileSync(
      path.join(project, 'Vmfile'),
      `provider: libvirt\nlibvirt:\n  uri: "${host.uri}"\nbox: vmfile/tiny\ncpus: 1\nmemory: 256\n`,
    )
    writeFileSync(path.join(project, 'host.txt'), 'from the host\n')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    domain = virsh('list', '--all', '--name').stdout.trim()
    expect(domain).not.toBe('')
  })

  afterAll(async () => {
    if (host !== undefined && project !== undefined) await run(['destroy', '-f'])
    await host?.stop()
    for (const dir of [project, home]) if (dir !== undefined) rmSync(dir, {recursive: true, force: true})
  })

  it('save while running, change the guest, restore: the change is gone, the guest continues, clock and /vm right', async () => {
    const [mounted, sleeper] = (
      await guest('grep -c " /vm 9p " /proc/mounts; setsid sleep 4000 </dev/null >/dev/null 2>&1 & echo $!')
    ).split('\n')
    expect(mounted).toBe('1')
    const atSave = await clockAndUptime()
    // The 9p share is mounted: libvirt (QEMU) refuses to save unless vm unmounts it around the save.
    const save = await run(['snapshot', 'save', 'live1', '--json'])
    expect(save.code, save.stderr).toBe(0)
    expect(json(save.stdout)).toMatchObject({snapshot: 'live1', action: 'saved', memory: true, state: 'running'})
    expect(virsh('snapshot-info', domain, 'live1').stdout).toMatch(/Location:\s+internal/)
    expect(await guest('cat /vm/host.txt; echo changed > /home/vm/after.txt && sync && echo written')).toBe('from the host\nwritten')
    const restore = await run(['snapshot', 'restore', 'live1', '--json'])
    expect(restore.code, restore.stderr + restore.stdout).toBe(0)
    expect(json(restore.stdout)).toMatchObject({snapshot: 'live1', action: 'restored', memory: true, state: 'running'})
    const [file, alive, shared] = (
      await guest(`test -e /home/vm/after.txt && echo present || echo gone; kill -0 ${sleeper} && echo alive; cat /vm/host.txt`)
    ).split('\n')
    expect([file, alive, shared]).toEqual(['gone', 'alive', 'from the host'])
    const now = await clockAndUptime()
    expect(now.skew).toBe(0)
    // Not rebooted: the uptime goes on from the snapshot's.
    expect(now.uptime).toBeGreaterThan(atSave.uptime)
    const list = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout)
    expect(list.snapshots).toHaveLength(1)
    expect(list.snapshots[0]).toMatchObject({name: 'live1', memory: true})
    expect(list.snapshots[0]!.memoryBytes).toBeGreaterThan(1024 * 1024)
    expect(list.snapshots[0]!.diskSizes[0]).toBeGreaterThan(0)
  })

  it('suspend: status saved (a managed save); resume: a process from before runs on, clock and /vm right', async () => {
    const sleeper = await guest('setsid sleep 6000 </dev/null >/dev/null 2>&1 & echo $!')
    const suspend = await run(['suspend', '--json'])
    expect(suspend.code, suspend.stderr).toBe(0)
    expect(json(suspend.stdout)).toMatchObject({was: 'running', state: 'saved'})
    expect(virsh('dominfo', domain).stdout).toMatch(/Managed save:\s+yes/)
    const status = json<{machines: Array<{state: string}>}>((await run(['status', '--json'])).stdout)
    expect(status.machines[0]!.state).toBe('saved')
    const resume = await run(['resume', '--json'])
    expect(resume.code, resume.stderr).toBe(0)
    expect(json(resume.stdout)).toMatchObject({was: 'saved'})
    expect((await guest(`kill -0 ${sleeper} && echo alive; cat /vm/host.txt`)).split('\n')).toEqual(['alive', 'from the host'])
    expect((await clockAndUptime()).skew).toBe(0)
    expect(virsh('dominfo', domain).stdout).toMatch(/Managed save:\s+no/)
  })

  it('halted: a disk snapshot; the live one boots the machine from its memory; destroy removes snapshots and saved state', async () => {
    expect((await run(['halt'])).code).toBe(0)
    const cold = await run(['snapshot', 'save', 'cold', '--json'])
    expect(cold.code, cold.stderr).toBe(0)
    expect(json(cold.stdout)).toMatchObject({memory: false, state: 'poweroff'})
    expect(virsh('snapshot-info', domain, 'cold').stdout).toMatch(/State:\s+shutoff[\s\S]*Location:\s+internal/)
    const live = await run(['snapshot', 'restore', 'live1', '--json'])
    expect(live.code, live.stderr).toBe(0)
    expect(json(live.stdout)).toMatchObject({memory: true, state: 'running'})
    expect(await guest('test -e /home/vm/after.txt && echo present || echo gone; grep -c " /vm 9p " /proc/mounts')).toBe('gone\n1')
    const names = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout).snapshots.map((snapshot) => [
      snapshot.name,
      snapshot.memory,
    ])
    expect(names).toEqual([
      ['live1', true],
      ['cold', false],
    ])
    // Destroyed while suspended: the domain goes with its snapshots and its saved state.
    expect((await run(['suspend'])).code).toBe(0)
    const destroy = await run(['destroy', '-f'])
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(virsh('list', '--all', '--name').stdout.trim()).toBe('')
    const saves = spawnSync('find', [host.stateDir, '-name', '*.save'], {encoding: 'utf8'}).stdout.trim()
    expect(saves).toBe('')
  })
})
