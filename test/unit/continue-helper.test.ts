import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir, userInfo} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {armScript, HELPER_GONE, helperKey, helperLoginCommand} from '../../src/machine/continue-helper.js'
import {clockAnswer, CLOCK_PROMPT} from '../../src/machine/guest-clock.js'
import {continueCommand, continueInLogin, continueScript, type RunInGuest} from '../../src/machine/guest-continuity.js'
import {runProgram} from '../../src/process/run.js'
import {processStartTime} from '../../src/state/process-check.js'
import type {SshTarget} from '../../src/ssh/options.js'

/**
 * The helper's protocol, run with the host's /bin/sh as the login's user (the helper too: the
 * test needs not be root), in a directory of the test's instead of /run/vm-continue, with
 * stand-ins for `date` (logs its arguments: never the host's clock) and `sudo` (logs that it
 * ran, then runs its command).
 */
interface Guest {
  dir: string
  env: NodeJS.ProcessEnv
  log: string
}

const made: string[] = []
const pids: number[] = []

afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  for (const dir of made.splice(0)) rmSync(dir, {recursive: true, force: true})
})

function guest(): Guest {
  const root = mkdtempSync(path.join(tmpdir(), 'vm-continue-helper-'))
  made.push(root)
  const bin = path.join(root, 'bin')
  mkdirSync(bin)
  const log = path.join(root, 'ran.log')
  writeFileSync(path.join(bin, 'date'), `#!/bin/sh\necho "date $*" >>'${log}'\n`)
  writeFileSync(path.join(bin, 'sudo'), `#!/bin/sh\necho sudo >>'${log}'\n[ "$1" = -n ] && shift\nexec "$@"\n`)
  for (const name of ['date', 'sudo']) chmodSync(path.join(bin, name), 0o755)
  return {dir: path.join(root, 'vm-continue'), env: {...process.env, PATH: `${bin}:${process.env.PATH}`}, log}
}

const ran = (g: Guest): string[] => (existsSync(g.log) ? readFileSync(g.log, 'utf8').split('\n').filter(Boolean) : [])

const script = continueScript([], [])

function arm(g: Guest, what = script): number {
  const result = spawnSync('/bin/sh', ['-c', armScript(what, userInfo().username, g.dir)], {env: g.env, encoding: 'utf8'})
  expect(result.status).toBe(0)
  const pid = Number(readFileSync(path.join(g.dir, 'id'), 'utf8').split(' ')[0])
  pids.push(pid)
  return pid
}

/** Whether process `pid` runs (a zombie does not: PID 1 of a container may not collect it). */
const alive = (pid: number): boolean => processStartTime(pid) !== undefined

async function login(g: Guest, waitSeconds = 5): Promise<{stdout: string; ms: number}> {
  const started = Date.now()
  const command = helperLoginCommand(script, continueCommand([], [], false), g.dir, waitSeconds)
  const {stdout} = await runProgram('/bin/sh', ['-c', command], {
    env: g.env,
    timeoutMs: 20_000,
    answer: {prompt: CLOCK_PROMPT, reply: () => clockAnswer(1_700_000_000_250)},
  })
  return {stdout, ms: Date.now() - started}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('the continue helper a save leaves in the guest', () => {
  it('serves the login after the guest continues without sudo: the host time reaches it, then it removes itself', async () => {
    const g = guest()
    const pid = arm(g)
    expect(readFileSync(path.join(g.dir, 'id'), 'utf8').trim().split(' ')).toHaveLength(4)
    const {stdout} = await login(g)
    expect(stdout).toBe('')
    expect(ran(g)).toEqual(['date -u -s @1700000000.250'])
    for (let waited = 0; (existsSync(g.dir) || alive(pid)) && waited < 40; waited++) await sleep(50)
    expect(existsSync(g.dir)).toBe(false)
    expect(alive(pid)).toBe(false)
  })

  it('a helper that is gone (killed, or a reboot since): the login falls back to sudo at once', async () => {
    const g = guest()
    process.kill(arm(g), 'SIGKILL')
    await sleep(100)
    const {stdout, ms} = await login(g)
    expect(stdout).toBe('')
    expect(ran(g)).toEqual(['sudo', 'date -u -s @1700000000.250'])
    expect(ms).toBeLessThan(2000)
  })

  it('no helper at all (a state saved by an earlier version): sudo, as before', async () => {
    const g = guest()
    expect((await login(g)).stdout).toBe('')
    expect(ran(g)).toEqual(['sudo', 'date -u -s @1700000000.250'])
  })

  it('a helper armed for other commands (other synced folders, another version) is not used', async () => {
    const g = guest()
    const pid = arm(g, continueScript([{host: '/p', guest: '/vm', type: '9p', readOnly: false, exclude: []}], [0]))
    expect((await login(g)).stdout).toBe('')
    expect(ran(g)).toEqual(['sudo', 'date -u -s @1700000000.250'])
    expect(alive(pid)).toBe(true)
  })

  it('a helper that does not take the request in time: the login says so (vm then logs in again with sudo)', async () => {
    const g = guest()
    // A live process of the right identity that never opens the FIFOs.
    const stuck = spawn('sleep', ['30'], {stdio: 'ignore'})
    pids.push(stuck.pid!)
    const start = processStartTime(stuck.pid!)
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    mkdirSync(g.dir)
    spawnSync('mkfifo', [path.join(g.dir, 'in'), path.join(g.dir, 'out')])
    writeFileSync(path.join(g.dir, 'id'), `${stuck.pid} ${start} ${boot} ${helperKey(script)}\n`)
    const {stdout, ms} = await login(g, 1)
    expect(stdout).toBe(`${HELPER_GONE}\n`)
    expect(ran(g)).toEqual([])
    expect(ms).toBeGreaterThanOrEqual(900)
    expect(ms).toBeLessThan(4000)
  })

  it('arming again ends the helper an earlier save left (a live snapshot whose machine ran on)', async () => {
    const g = guest()
    const first = arm(g)
    const second = arm(g)
    expect(second).not.toBe(first)
    for (let waited = 0; alive(first) && waited < 40; waited++) await sleep(50)
    expect(alive(first)).toBe(false)
    expect((await login(g)).stdout).toBe('')
    expect(ran(g)).toEqual(['date -u -s @1700000000.250'])
  })
})

describe('the login after a continue, as vm runs it', () => {
  const target = {user: 'vm'} as SshTarget

  it('tries the helper first and, when the helper is gone, logs in again through sudo with a fresh time', async () => {
    const commands: string[] = []
    const run: RunInGuest = async (_target, command, options) => {
      commands.push(command)
      const stdout = commands.length === 1 ? `${HELPER_GONE}\n` : ''
      expect(options?.answer?.prompt).toBe(CLOCK_PROMPT)
      return {code: 0, stdout, stderr: ''}
    }
    expect(await continueInLogin(target, [], {run})).toEqual([])
    expect(commands).toEqual([helperLoginCommand(continueScript([], []), continueCommand([], [], false)), continueCommand([], [], false)])
  })

  it('a root login needs no helper: sudo-less commands at once', async () => {
    const commands: string[] = []
    const run: RunInGuest = async (_target, command) => (commands.push(command), {code: 0, stdout: '', stderr: ''})
    await continueInLogin({user: 'root'} as SshTarget, [], {run})
    expect(commands).toEqual([continueCommand([], [], true)])
  })
})
