import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {clockAnswer, clockCommand, CLOCK_PROMPT} from '../../src/machine/guest-clock.js'
import {continueCommand} from '../../src/machine/guest-continuity.js'
import {runProgram} from '../../src/process/run.js'
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
    const command = continueCommand(folders, [0, 2], false)
    expect(command.match(/sudo/g)).toHaveLength(1)
    expect(command).toMatch(/^sudo -n sh -c '/)
    expect(command).toContain('[ -d /sys/module/9pnet_virtio ] || modprobe 9pnet_virtio')
    expect(command).toContain('mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none vm0 ')
    expect(command).toContain('cache=none vm2 ')
    expect(command).not.toContain('/src')
  })

  it('no shares: the clock alone; as root, no sudo at all', () => {
    const command = continueCommand([], [], true)
    expect(command).not.toContain('sudo')
    expect(command).not.toContain('mount')
    expect(command).not.toContain('modprobe')
    expect(command).toContain(clockCommand())
  })

  it('a guest whose sudo refuses says clock-failed (not a failed login, which the SSH wait would retry)', () => {
    const command = continueCommand([], [], false)
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
    const command = continueCommand([folder(mountPoint, '9p')], [0], true)
    spawnSync('/bin/sh', ['-c', command], {encoding: 'utf8', env: {...process.env, PATH: `${bin}:${process.env.PATH}`}})
    const spawned = spawnSync('/bin/sh', ['-c', `cat '${log}' 2>/dev/null`], {encoding: 'utf8'}).stdout.split('\n')
    expect(spawned).not.toContain('cat')
    expect(spawned).not.toContain('mkdir')
    expect(spawned).toContain('mount')
  })

  /**
   * Runs the clock commands with /bin/sh, answered as vm answers them, with stand-ins for `date`
   * that log their arguments (never the host's own clock): GNU's (takes `@SECONDS.FRACTION`) or
   * busybox's (whole seconds only). Returns what it printed, how long it took and the log once
   * it holds `calls` lines (the background step's too) or two seconds have passed.
   */
  async function setClock(date: 'gnu' | 'busybox', nowMs: number, calls: number): Promise<{stdout: string; ms: number; log: string[]}> {
    const bin = mkdtempSync(path.join(tmpdir(), 'vm-clock-'))
    const log = path.join(bin, 'date.log')
    const accepts = date === 'gnu' ? '*' : '@[0-9]*[!0-9]*) exit 1;; *'
    writeFileSync(path.join(bin, 'date'), `#!/bin/sh\ncase "$3" in ${accepts}) echo "$*" >>'${log}';; esac\n`)
    chmodSync(path.join(bin, 'date'), 0o755)
    const started = Date.now()
    const {stdout} = await runProgram('/bin/sh', ['-c', `{ ${clockCommand()}; } || echo clock-failed`], {
      env: {...process.env, PATH: `${bin}:${process.env.PATH}`},
      answer: {prompt: CLOCK_PROMPT, reply: () => clockAnswer(nowMs)},
    })
    const ms = Date.now() - started
    const read = () =>
      spawnSync('/bin/sh', ['-c', `cat '${log}' 2>/dev/null`], {encoding: 'utf8'})
        .stdout.split('\n')
        .filter(Boolean)
    while (read().length < calls && Date.now() - started < 2000) await new Promise((resolve) => setTimeout(resolve, 50))
    return {stdout, ms, log: read()}
  }

  it("the host's time is asked for when the guest can use it and set to the millisecond where date takes fractions", async () => {
    const set = await setClock('gnu', 1_700_000_000_250, 2)
    expect([set.stdout, set.log]).toEqual(['', ['-u -s @1700000000.250']])
  })

  it('a date of whole seconds: the nearest second at once, the next one exactly when it comes (in the background)', async () => {
    const early = await setClock('busybox', 1_700_000_000_250, 2)
    expect([early.stdout, early.log]).toEqual(['', ['-u -s @1700000000', '-u -s @1700000001']])
    // The commands did not wait for the next second, 0.75 s away.
    expect(early.ms).toBeLessThan(600)
    expect((await setClock('busybox', 1_700_000_000_900, 2)).log).toEqual(['-u -s @1700000001', '-u -s @1700000001'])
  })

  it('the answer: precise, nearest, next second, and the wait for it', () => {
    expect(clockAnswer(1_700_000_000_250)).toBe('1700000000.250 1700000000 1700000001 0.750\n')
    expect(clockAnswer(1_700_000_000_999)).toBe('1700000000.999 1700000001 1700000001 0.001\n')
    expect(clockAnswer(1_700_000_000_007)).toBe('1700000000.007 1700000000 1700000001 0.993\n')
  })

  it('a question on stdout is answered on stdin, and its line is not part of the output', async () => {
    const script = `echo before; echo '${CLOCK_PROMPT}'; read -r answer; echo "got $answer"`
    const asked: number[] = []
    const {stdout} = await runProgram('/bin/sh', ['-c', script], {
      answer: {prompt: CLOCK_PROMPT, reply: () => (asked.push(Date.now()), '42\n')},
    })
    expect(stdout).toBe('before\ngot 42\n')
    expect(asked).toHaveLength(1)
  })
})
