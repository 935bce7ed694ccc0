import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {parseFastSsh} from '../../src/cli/ssh-fast-path.js'
import {controlPathFor, liveMaster} from '../../src/ssh/master.js'
import {sampleTarget} from '../helpers/ssh-target.js'

const root = path.resolve(import.meta.dirname, '../..')
const scratch = mkdtempSync(path.join(tmpdir(), 'vm-fast-ssh-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

describe("vm ssh's fast path: the arguments it takes", () => {
  it('at most one machine name and one non-empty -c/--command; anything else is for the full command', () => {
    expect(parseFastSsh([])).toEqual({})
    expect(parseFastSsh(['web'])).toEqual({name: 'web'})
    expect(parseFastSsh(['-c', 'uname -a'])).toEqual({command: 'uname -a'})
    expect(parseFastSsh(['web', '--command', 'true'])).toEqual({name: 'web', command: 'true'})
    expect(parseFastSsh(['--command=a=b', 'web'])).toEqual({name: 'web', command: 'a=b'})
    for (const argv of [
      ['web', 'db', '-c', 'true'],
      ['-t', '-c', 'top'],
      ['-c', 'true', '--json'],
      ['--workdir', '/tmp'],
      ['--cwd', '/tmp', '-c', 'true'],
      ['--', '-L', '9001:localhost:80', '-N'],
      ['web', '--'],
      ['--help'],
      ['-c'],
      ['-c', ''],
      ['-c', '-x'],
      ['-c', 'a', '-c', 'b'],
      ['-ctrue'],
      [''],
    ])
      expect(parseFastSsh(argv), argv.join(' ')).toBeUndefined()
  })
})

describe("vm ssh's fast path: a live master", () => {
  const env = {VM_RUNTIME_DIR: path.join(scratch, 'run')}
  const machine = {...sampleTarget, machineId: 'fedcba9876543210'}

  it('is a socket of this user where something answers; no socket, another file or a stale socket is none', async () => {
    const file = controlPathFor(machine, env)!
    mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
    expect(await liveMaster(machine, env)).toBeUndefined()
    writeFileSync(file, '')
    expect(await liveMaster(machine, env)).toBeUndefined()
    rmSync(file)
    const server = net.createServer((socket) => socket.destroy())
    await new Promise<void>((resolve) => server.listen(file, resolve))
    try {
      expect(await liveMaster(machine, env)).toBe(file)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
    // A socket whose listener died without removing it (as a killed master leaves it).
    const stale = spawnSync(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`],
      {encoding: 'utf8'},
    )
    expect(stale.signal).toBe('SIGKILL')
    expect(statSync(file).isSocket()).toBe(true)
    expect(await liveMaster(machine, env)).toBeUndefined()
  })
})

describe("vm ssh's fast path in the built CLI (no machine running: it always falls back)", () => {
  const home = path.join(scratch, 'home')
  const project = path.join(scratch, 'project')
  const selectDir = path.join(home, 'run', 'select')

  function vm(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
    const result = spawnSync(process.execPath, [path.join(root, 'bin/run.js'), ...args], {
      cwd: project,
      encoding: 'utf8',
      env: {...process.env, VM_HOME: home, NO_COLOR: '1', VM_DEBUG: '1', ...extraEnv},
    })
    return {code: result.status, stdout: result.stdout, stderr: result.stderr}
  }

  const memo = () => {
    const [name] = readdirSync(selectDir)
    return statSync(path.join(selectDir, name!))
  }

  it("declines before ssh runs and the full command says what is wrong; remembers the Vmfile's machines privately until it changes", () => {
    mkdirSync(project, {recursive: true})
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\nmachines:\n  web: {primary: true}\n  db: {}\n')
    const first = vm(['ssh', '-c', 'true'])
    expect(first.code).toBe(1)
    expect(first.stderr).toContain(
      'vm: ssh fast path not taken (Machine web is not running (state: not_created)): running the full command',
    )
    expect(first.stderr).toContain('Error: Machine web is not running (state: not_created)')
    expect(readdirSync(selectDir)).toHaveLength(1)
    expect(statSync(selectDir).mode & 0o777).toBe(0o700)
    const written = memo()
    expect(written.mode & 0o777).toBe(0o600)

    // The same Vmfile: the remembered machines are used (the memo is not written again).
    const again = vm(['ssh', 'db', '-c', 'true'])
    expect(again.stderr).toContain('fast path not taken (Machine db is not running')
    expect(memo().ino).toBe(written.ino)

    // A name the Vmfile does not have (perhaps a machine id): the full command decides.
    const other = vm(['ssh', 'cache', '-c', 'true'])
    expect(other.stderr).toContain('fast path not taken (no machine named "cache" in the Vmfile)')
    expect(other.stderr).toContain('No machine named "cache"')

    // A changed Vmfile is loaded again; an invalid one is the full command's error, exit status and all.
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 0\n')
    const invalid = vm(['ssh', '-c', 'true'])
    const plain = vm(['validate'])
    expect(invalid.code).toBe(plain.code)
    expect(invalid.stderr).toContain('fast path not taken (')
    expect(invalid.stderr).toContain('cpus')
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\n')
    expect(vm(['ssh', '-c', 'true']).stderr).toContain('fast path not taken (Machine default is not running')
    expect(memo().ino).not.toBe(written.ino)
  }, 120_000)

  it('trusts nothing in a runtime directory others can write to', () => {
    chmodSync(path.join(home, 'run'), 0o777)
    try {
      const unsafe = vm(['ssh', '-c', 'true'])
      expect(unsafe.code).not.toBe(0)
      expect(unsafe.stderr).toMatch(/fast path not taken \(Refusing to use .*others can write into it/)
    } finally {
      chmodSync(path.join(home, 'run'), 0o700)
    }
  }, 60_000)

  it('--json and other options go to the full command untouched: stdout stays one JSON document', () => {
    const json = vm(['ssh', '--json', '-c', 'true'])
    expect(json.stderr).toContain('fast path not taken (arguments it does not handle)')
    expect(JSON.parse(json.stdout)).toMatchObject({status: 1, error: {code: 'NOT_RUNNING'}})
    const quiet = vm(['ssh', '-c', 'true'], {VM_DEBUG: ''})
    expect(quiet.stderr).not.toContain('fast path')
  }, 60_000)
})
