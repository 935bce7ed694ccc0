import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

/** A TCP port on 127.0.0.1 that nothing holds now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  await new Promise((resolve) => server.close(resolve))
  return port
}

function json<T>(stdout: string): T {
  return (JSON.parse(stdout) as {result: T}).result
}

interface Listed {
  snapshots: Array<{name: string; memory: boolean; memoryBytes: number; diskSizes: number[]; createdAt: string; pushed: boolean}>
}

describe('snapshots, suspend and resume of a tiny machine (9p folder mounted at /vm)', () => {
  let fixture: MachineFixture
  let project: string
  let webPort: number
  const run = (args: string[]) => fixture.run(args)
  const guest = (command: string) => fixture.guest(command)
  const machineDir = () => path.join(project, '.vm/machines/default')

  beforeAll(async () => {
    fixture = machineFixture('snap', 'tiny')
    project = fixture.project
    webPort = await freePort()
    writeFileSync(
      path.join(project, 'Vmfile'),
      `box: vmfile/tiny\ncpus: 1\nmemory: 256\nforwarded_ports:\n  - {guest: 8000, host: ${webPort}, auto_correct: true}\n`,
    )
    writeFileSync(path.join(project, 'host.txt'), 'from the host\n')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
  })

  afterAll(() => fixture.cleanup())

  it('save while running, change the guest, restore: the change is gone, the guest continues where it was', async () => {
    // A process from before the snapshot; its PID and the uptime then identify the snapshot's guest.
    const before = await guest(
      'grep -c " /vm 9p " /proc/mounts; setsid sleep 4000 </dev/null >/dev/null 2>&1 & echo $!; cut -d" " -f1 /proc/uptime',
    )
    const [mounted, sleeper, uptimeAtSave] = before.split('\n')
    expect(mounted).toBe('1')
    const save = await run(['snapshot', 'save', 'live1', '--json'])
    expect(save.code, save.stderr).toBe(0)
    expect(json(save.stdout)).toMatchObject({machine: 'default', snapshot: 'live1', action: 'saved', memory: true, state: 'running'})
    // The save left the continue helper waiting in the guest (and so in the snapshot).
    expect((await guest('cat /run/vm-continue/id')).split(' ')).toHaveLength(4)
    // The share is back after the save; then the guest changes.
    const changed = await guest(
      'cat /vm/host.txt; echo changed > /root/after.txt && sync && setsid sleep 5000 </dev/null >/dev/null 2>&1 & echo $!',
    )
    const [shared, after] = changed.split('\n')
    expect(shared).toBe('from the host')
    writeFileSync(path.join(project, 'later.txt'), 'written on the host before the restore\n')
    const started = Date.now()
    const restore = await run(['snapshot', 'restore', 'live1', '--json'])
    expect(restore.code, restore.stderr).toBe(0)
    console.log(`tiny: live restore in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    expect(json(restore.stdout)).toMatchObject({snapshot: 'live1', action: 'restored', memory: true, state: 'running'})
    const hostBefore = Date.now() / 1000
    const checks = await guest(
      [
        'test -e /root/after.txt && echo present || echo gone',
        `kill -0 ${sleeper} && echo alive`,
        `kill -0 ${after} 2>/dev/null && echo alive || echo gone`,
        'cut -d" " -f1 /proc/uptime',
        'date +%s',
        'cat /vm/later.txt',
        'test -e /run/vm-continue && echo helper-left || echo helper-done',
        'echo from-guest | sudo -n tee /vm/guest.txt >/dev/null',
        'mkdir -p /tmp/www && echo served > /tmp/www/index.html && busybox httpd -p 8000 -h /tmp/www',
      ].join('; '),
    )
    const hostAfter = Date.now() / 1000
    const [file, snapshotProcess, laterProcess, uptime, guestNow, later, helper] = checks.split('\n')
    expect([file, snapshotProcess, laterProcess]).toEqual(['gone', 'alive', 'gone'])
    // The helper served the login after the restore (no sudo) and removed itself.
    expect(helper).toBe('helper-done')
    // Not rebooted: the uptime goes on from the snapshot's.
    expect(Number(uptime)).toBeGreaterThan(Number(uptimeAtSave))
    // The clock is the host's (within 2 s).
    expect(Number(guestNow)).toBeGreaterThanOrEqual(Math.floor(hostBefore) - 2)
    expect(Number(guestNow)).toBeLessThanOrEqual(Math.ceil(hostAfter) + 2)
    // The synced folder works again, both ways; the forwarded port carries traffic.
    expect(later).toBe('written on the host before the restore')
    expect(readFileSync(path.join(project, 'guest.txt'), 'utf8')).toBe('from-guest\n')
    const record = JSON.parse(readFileSync(path.join(machineDir(), 'machine.json'), 'utf8'))
    const port = record.forwards.find((forward: {guest: number}) => forward.guest === 8000).host
    expect((await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).trim()).toBe('served')
    // A second save works after a restore (QEMU keeps no 9p state that would block it).
    const again = await run(['snapshot', 'save', 'live2'])
    expect(again.code, again.stderr).toBe(0)
    const list = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout)
    expect(list.snapshots.map((snapshot) => snapshot.name)).toEqual(['live1', 'live2'])
    expect(list.snapshots[0]).toMatchObject({memory: true, pushed: false})
    expect(list.snapshots[0]!.memoryBytes).toBeGreaterThan(1024 * 1024)
    expect(list.snapshots[0]!.diskSizes[0]).toBeGreaterThan(0)
    const existing = await run(['snapshot', 'save', 'live1'])
    expect(existing.code).not.toBe(0)
    expect(existing.stderr).toContain('already has a snapshot named live1')
  })

  it('push, change, pop: back to the pushed state and the pushed snapshot is gone', async () => {
    const push = await run(['snapshot', 'push', '--json'])
    expect(push.code, push.stderr).toBe(0)
    const pushed = json<{snapshot: string}>(push.stdout).snapshot
    expect(pushed).toMatch(/^push-\d{8}-\d{6}(-\d+)?$/)
    await guest('echo x > /root/after-push.txt && sync')
    const pop = await run(['snapshot', 'pop', '--json'])
    expect(pop.code, pop.stderr).toBe(0)
    expect(json(pop.stdout)).toMatchObject({snapshot: pushed, action: 'restored'})
    expect(await guest('test -e /root/after-push.txt && echo present || echo gone')).toBe('gone')
    const names = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout).snapshots.map((snapshot) => snapshot.name)
    expect(names).toEqual(['live1', 'live2'])
  })

  it('suspend: status saved, halt without a terminal refuses; resume: a process from before runs on, folders and clock right', async () => {
    const sleeper = await guest('setsid sleep 6000 </dev/null >/dev/null 2>&1 & echo $!')
    const suspend = await run(['suspend', '--json'])
    expect(suspend.code, suspend.stderr).toBe(0)
    expect(json(suspend.stdout)).toMatchObject({name: 'default', was: 'running', state: 'saved'})
    const status = json<{machines: Array<{state: string}>}>((await run(['status', '--json'])).stdout)
    expect(status.machines[0]!.state).toBe('saved')
    expect(existsSync(path.join(machineDir(), 'saved-state'))).toBe(true)
    const halt = await run(['halt'])
    expect(halt.code).not.toBe(0)
    expect(halt.stderr).toContain('is suspended: halting it discards its saved state')
    const started = Date.now()
    const resume = await run(['resume', '--json'])
    expect(resume.code, resume.stderr).toBe(0)
    console.log(`tiny: resume in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    expect(json(resume.stdout)).toMatchObject({name: 'default', was: 'saved'})
    const hostBefore = Date.now() / 1000
    const [alive, shared, guestNow] = (await guest(`kill -0 ${sleeper} && echo alive; cat /vm/host.txt; date +%s`)).split('\n')
    const hostAfter = Date.now() / 1000
    expect([alive, shared]).toEqual(['alive', 'from the host'])
    expect(Number(guestNow)).toBeGreaterThanOrEqual(Math.floor(hostBefore) - 2)
    expect(Number(guestNow)).toBeLessThanOrEqual(Math.ceil(hostAfter) + 2)
    expect(existsSync(path.join(machineDir(), 'saved-state'))).toBe(false)
  })

  it('resume when the helper the suspend left is gone (killed before the state was saved): through sudo, clock and folders right', async () => {
    // As root in the guest, a watcher kills the helper the moment it has written its identity, before QEMU saves the guest.
    const watcher = `while [ ! -e /run/vm-continue/id ]; do :; done; read -r pid rest </run/vm-continue/id; kill -9 "$pid"`
    await guest(`sudo -n setsid sh -c '${watcher}' </dev/null >/dev/null 2>&1 &`)
    const suspend = await run(['suspend'])
    expect(suspend.code, suspend.stderr).toBe(0)
    const resume = await run(['resume'])
    expect(resume.code, resume.stderr).toBe(0)
    const hostBefore = Date.now() / 1000
    const checks = await guest(
      'read -r pid rest </run/vm-continue/id && { [ -e /proc/$pid ] && echo alive || echo dead; }; cat /vm/host.txt; date +%s',
    )
    const hostAfter = Date.now() / 1000
    const [helper, shared, guestNow] = checks.split('\n')
    // The dead helper's identity is still there: the login did not use it, sudo set the clock and mounted /vm.
    expect([helper, shared]).toEqual(['dead', 'from the host'])
    expect(Number(guestNow)).toBeGreaterThanOrEqual(Math.floor(hostBefore) - 2)
    expect(Number(guestNow)).toBeLessThanOrEqual(Math.ceil(hostAfter) + 2)
  })

  it('halted: a disk snapshot; a snapshot with memory boots from it; a disk snapshot brings it back halted; mismatches refused', async () => {
    expect((await run(['halt'])).code).toBe(0)
    const cold = await run(['snapshot', 'save', 'cold', '--json'])
    expect(cold.code, cold.stderr).toBe(0)
    expect(json(cold.stdout)).toMatchObject({memory: false, state: 'poweroff'})
    // The live snapshot of a halted machine: it runs again from there.
    const live = await run(['snapshot', 'restore', 'live1', '--json'])
    expect(live.code, live.stderr).toBe(0)
    expect(json(live.stdout)).toMatchObject({memory: true, state: 'running'})
    expect(await guest('test -e /root/after.txt && echo present || echo gone; grep -c " /vm 9p " /proc/mounts')).toBe('gone\n1')
    // The disk snapshot from a running machine: stopped and put back, halted.
    const back = await run(['snapshot', 'restore', 'cold', '--json'])
    expect(back.code, back.stderr).toBe(0)
    expect(json(back.stdout)).toMatchObject({memory: false, state: 'poweroff'})
    // A snapshot taken on another box version is refused with the reason.
    const recordFile = path.join(machineDir(), 'machine.json')
    const record = JSON.parse(readFileSync(recordFile, 'utf8'))
    record.snapshots.find((snapshot: {name: string}) => snapshot.name === 'live2').box.version = '0.9.0'
    writeFileSync(recordFile, JSON.stringify(record))
    const refused = await run(['snapshot', 'restore', 'live2'])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('snapshot live2 was taken on box vmfile/tiny 0.9.0; the machine now runs vmfile/tiny 1.0.0')
    // Booting (from live1, through vm up's stages) kept every snapshot; delete removes one.
    const deleted = await run(['snapshot', 'delete', 'live2', '--json'])
    expect(deleted.code, deleted.stderr).toBe(0)
    const names = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout).snapshots.map((snapshot) => snapshot.name)
    expect(names).toEqual(['live1', 'cold'])
  })

  it('machine.json lost while the disk remains: vm up refuses, and the disk keeps its snapshots', async () => {
    const recordFile = path.join(machineDir(), 'machine.json')
    const kept = readFileSync(recordFile)
    rmSync(recordFile)
    const up = await run(['up'])
    expect(up.code).not.toBe(0)
    expect(up.stderr).toContain(`${recordFile} is missing`)
    expect(up.stderr).toContain('vm destroy -f default')
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', path.join(machineDir(), 'disk0.qcow2')], {encoding: 'utf8'}),
    )
    expect(info.snapshots.map((snapshot: {name: string}) => snapshot.name)).toEqual(['live1', 'cold'])
    expect(existsSync(recordFile)).toBe(false)
    // With the record back, the machine is whole again.
    writeFileSync(recordFile, kept)
    const names = json<Listed>((await run(['snapshot', 'list', '--json'])).stdout).snapshots.map((snapshot) => snapshot.name)
    expect(names).toEqual(['live1', 'cold'])
  })
})

describe('snapshots of a Debian 12 machine (systemd)', () => {
  let fixture: MachineFixture
  const run = (args: string[]) => fixture.run(args)
  const guest = (command: string) => fixture.guest(command)

  beforeAll(async () => {
    fixture = machineFixture('snapdeb', 'debian-12', {timeoutMs: 600_000})
    writeFileSync(path.join(fixture.project, 'Vmfile'), 'box: vmfile/debian-12\ncpus: 2\nmemory: 512\n')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
  })

  afterAll(() => fixture.cleanup())

  it('save and restore with systemd running: the change is gone, systemd runs on, clock and /vm right', async () => {
    // SSH answers before systemd has finished booting: save a system that is up (running or
    // degraded), so that what the restore brings back can be checked for exactly that.
    expect(await guest('systemctl is-system-running --wait || true')).toMatch(/^(running|degraded)$/)
    const save = await run(['snapshot', 'save', 'base'])
    expect(save.code, save.stderr).toBe(0)
    expect(await guest('echo changed | sudo -n tee /etc/after-snapshot && sync')).toBe('changed')
    const started = Date.now()
    const restore = await run(['snapshot', 'restore', 'base'])
    expect(restore.code, restore.stderr).toBe(0)
    console.log(`debian-12: live restore in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    const hostBefore = Date.now() / 1000
    const checks = await guest(
      'test -e /etc/after-snapshot && echo present || echo gone; systemctl is-system-running; grep -c " /vm 9p " /proc/mounts; date +%s; test -e /run/vm-continue && echo helper-left || echo helper-done',
    )
    const hostAfter = Date.now() / 1000
    const [file, systemd, mounted, guestNow, helper] = checks.split('\n')
    expect(file).toBe('gone')
    // The helper the save left (in a session of its own, outside sudo's terminal) served the login and removed itself.
    expect(helper).toBe('helper-done')
    expect(systemd).toMatch(/^(running|degraded)$/)
    expect(mounted).toBe('1')
    expect(Number(guestNow)).toBeGreaterThanOrEqual(Math.floor(hostBefore) - 2)
    expect(Number(guestNow)).toBeLessThanOrEqual(Math.ceil(hostAfter) + 2)
  })
})
