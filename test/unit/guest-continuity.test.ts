import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {continueCommand} from '../../src/machine/guest-continuity.js'
import type {SyncedFolder} from '../../src/vmfile/types.js'

const folder = (guest: string, type: SyncedFolder['type']): SyncedFolder => ({host: '/p', guest, type, readOnly: false, exclude: []})

/** Runs `command` with /bin/sh, with `sudo` a stand-in that runs its command or, when `sudoFails`, refuses; `date` and `hwclock` always refuse. */
function runWithSudo(command: string, sudoFails: boolean): string {
  const bin = mkdtempSync(path.join(tmpdir(), 'vm-continue-'))
  writeFileSync(path.join(bin, 'sudo'), sudoFails ? '#!/bin/sh\nexit 1\n' : '#!/bin/sh\n[ "$1" = -n ] && shift\necho sudo >&2\nexec "$@"\n')
  chmodSync(path.join(bin, 'sudo'), 0o755)
  // The clock commands must never reach the host's own clock (these tests may run as root):
  // date and hwclock are stand-ins that refuse, as for a user who may not set the clock.
  for (const name of ['date', 'hwclock']) {
    writeFileSync(path.join(bin, name), '#!/bin/sh\nexit 1\n')
    chmodSync(path.join(bin, name), 0o755)
  }
  const result = spawnSync('/bin/sh', ['-c', command], {encoding: 'utf8', env: {...process.env, PATH: `${bin}:${process.env.PATH}`}})
  return `${result.stdout}|${result.stderr.split('\n').filter((line) => line === 'sudo').length}`
}

describe('what a guest runs when it continues after a resume or restore', () => {
  it('one sudo for everything: the clock, the 9p module only when missing, each share mounted unless it is', () => {
    const folders = [folder('/vm', 'auto'), folder('/src', 'rsync'), folder('/data', '9p')]
    const command = continueCommand(folders, [0, 2], 1700000000, false)
    expect(command.match(/sudo/g)).toHaveLength(1)
    expect(command).toMatch(/^sudo -n sh -c '/)
    expect(command).toContain('[ -d /sys/module/9pnet_virtio ] || modprobe 9pnet_virtio')
    expect(command).toContain('mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none vm0 ')
    expect(command).toContain('cache=none vm2 ')
    expect(command).not.toContain('/src')
  })

  it('no shares: the clock alone; as root, no sudo at all', () => {
    const command = continueCommand([], [], 1700000000, true)
    expect(command).not.toContain('sudo')
    expect(command).not.toContain('mount')
    expect(command).not.toContain('modprobe')
    expect(command).toContain('/sys/class/rtc/rtc0/since_epoch')
  })

  it('a guest whose sudo refuses says clock-failed (not a failed login, which the SSH wait would retry)', () => {
    const command = continueCommand([], [], 1700000000, false)
    expect(runWithSudo(command, true)).toBe('clock-failed\n|0')
    // With sudo working, sudo runs once (the clock commands themselves are stand-ins that refuse: said the same way).
    expect(runWithSudo(command, false).endsWith('|1')).toBe(true)
  })

  it('starts no process of its own to read the RTC or for a mount point that exists (each costs a moment under emulation)', () => {
    const bin = mkdtempSync(path.join(tmpdir(), 'vm-continue-spawned-'))
    const mountPoint = mkdtempSync(path.join(tmpdir(), 'vm-continue-mount-point-'))
    const log = path.join(bin, 'spawned.log')
    // Stand-ins that only say they ran (and refuse): never the host's own clock or mounts.
    for (const name of ['cat', 'mkdir', 'date', 'hwclock', 'mount', 'modprobe']) {
      writeFileSync(path.join(bin, name), `#!/bin/sh\necho ${name} >>'${log}'\nexit 1\n`)
      chmodSync(path.join(bin, name), 0o755)
    }
    const command = continueCommand([folder(mountPoint, '9p')], [0], 1700000000, true)
    spawnSync('/bin/sh', ['-c', command], {encoding: 'utf8', env: {...process.env, PATH: `${bin}:${process.env.PATH}`}})
    const spawned = spawnSync('/bin/sh', ['-c', `cat '${log}' 2>/dev/null`], {encoding: 'utf8'}).stdout.split('\n')
    expect(spawned).not.toContain('cat')
    expect(spawned).not.toContain('mkdir')
    expect(spawned).toContain('mount')
  })
})
