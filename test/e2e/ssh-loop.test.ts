import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, root, type MachineFixture} from '../helpers/vm-cli.js'

const bin = path.join(root, 'bin/run.js')

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const {port} = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Whether an SSH server greets on 127.0.0.1:port. */
function sshGreets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({host: '127.0.0.1', port})
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(3000, () => done(false))
    socket.on('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('SSH-')))
    socket.on('error', () => done(false))
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** One shared-connection master process per socket: its pid, from `ssh -O check`; undefined when none answers. */
function masterPid(socket: string): number | undefined {
  const check = spawnSync('ssh', ['-o', `ControlPath=${socket}`, '-O', 'check', 'x'], {encoding: 'utf8'})
  const match = /pid=(\d+)/.exec(check.stderr)
  return match === null ? undefined : Number(match[1])
}

describe('the everyday loop: vm ssh and vm cp on two tiny machines', () => {
  let fixture: MachineFixture
  let project: string
  const run = (args: string[]) => fixture.run(args)
  const sockets = (): string[] => {
    const dir = path.join(fixture.home, 'run/ssh')
    return existsSync(dir) ? readdirSync(dir).map((name) => path.join(dir, name)) : []
  }
  /** vm in a pseudo-terminal (script), from `cwd`, with `input` typed into it. */
  const inTerminal = (args: string[], cwd: string, input = '') => {
    const command = [process.execPath, bin, ...args].map((part) => `'${part}'`).join(' ')
    const result = spawnSync('script', ['-qec', command, '/dev/null'], {
      cwd,
      input,
      encoding: 'utf8',
      env: {...process.env, ...fixture.env, NO_COLOR: '1'},
      timeout: 60_000,
    })
    return {code: result.status, output: result.stdout.replaceAll('\r', '')}
  }

  beforeAll(async () => {
    fixture = machineFixture('ssh-loop', 'tiny')
    project = fixture.project
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nmachines:\n  web: {primary: true}\n  db: {}\n')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
  }, 180_000)

  afterAll(async () => {
    await fixture.cleanup()
    // Destroy closed every shared connection: no master is left behind.
    expect(sockets()).toEqual([])
  }, 120_000)

  it('vm cp: host to machine (-r), machine to machine (-r), machine to host (a file keeps its mode), --json, clear errors', async () => {
    mkdirSync(path.join(fixture.home, 'tree/sub'), {recursive: true})
    writeFileSync(path.join(fixture.home, 'tree/sub/a.txt'), 'alpha\n')
    writeFileSync(path.join(fixture.home, 'tree/run.sh'), '#!/bin/sh\necho ran\n', {mode: 0o755})
    const up = await run(['cp', '--json', '-r', path.join(fixture.home, 'tree'), 'web:copy'])
    expect(up.code, up.stderr).toBe(0)
    expect(JSON.parse(up.stdout).result).toMatchObject({
      from: {path: path.join(fixture.home, 'tree')},
      to: {machine: 'web', path: 'copy'},
      kind: 'directory',
    })
    const across = await run(['cp', '-r', 'web:copy', 'db:/tmp'])
    expect(across.code, across.stderr).toBe(0)
    const back = path.join(fixture.home, 'back.sh')
    const down = await run(['cp', '--json', 'db:/tmp/copy/run.sh', back])
    expect(down.code, down.stderr).toBe(0)
    expect(JSON.parse(down.stdout).result).toMatchObject({
      from: {machine: 'db', path: '/tmp/copy/run.sh'},
      to: {path: back},
      kind: 'file',
      bytes: 19,
    })
    expect(readFileSync(back, 'utf8')).toBe('#!/bin/sh\necho ran\n')
    expect(statSync(back).mode & 0o777).toBe(0o755)
    const missing = await run(['cp', 'web:/no/such/file', fixture.home])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toContain('web:/no/such/file: no such file or directory')
  })

  it('several names: the command runs on each, output prefixed; a failure on any is a non-zero exit that names it', async () => {
    // Only web has ~/copy (from the vm cp test).
    const one = await run(['ssh', 'web', 'db', '-c', 'echo hello; test -d copy'])
    expect(one.code).not.toBe(0)
    expect(one.stdout.split('\n').sort()).toEqual(['', '[db] hello', '[web] hello'])
    expect(one.stderr).toContain('the command failed on db (exit status 1)')
    expect(one.stderr).not.toMatch(/failed on .*web/)
    const json = await run(['ssh', 'web', 'db', '--json', '-c', 'test -d copy'])
    const result = JSON.parse(json.stdout).result as {exitCode: number; machines: Array<{machine: string; exitCode: number}>}
    expect(json.code).not.toBe(0)
    expect(result.exitCode).toBe(1)
    expect(result.machines.find((machine) => machine.machine === 'db')?.exitCode).toBe(1)
    expect(result.machines.find((machine) => machine.machine === 'web')?.exitCode).toBe(0)
  })

  it('arguments after "--" go to ssh: a port forward with -N', async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [bin, 'ssh', '--', '-L', `127.0.0.1:${port}:127.0.0.1:22`, '-N'], {
      cwd: project,
      env: {...process.env, ...fixture.env},
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    try {
      let greeted = false
      for (let tries = 0; tries < 40 && !greeted && child.exitCode === null; tries++) {
        await sleep(250)
        greeted = await sshGreets(port)
      }
      expect(greeted, stderr).toBe(true)
    } finally {
      process.kill(-child.pid!, 'SIGTERM')
    }
  })

  it('-t gives the command a terminal; --workdir runs it there; a shell started in a synced folder lands in the guest side of it', async () => {
    expect(inTerminal(['ssh', '-t', '-c', 'tty'], project).output).toMatch(/\/dev\/pts\/\d+/)
    expect((await run(['ssh', '--workdir', '/tmp', '-c', 'pwd'])).stdout).toBe('/tmp\n')
    mkdirSync(path.join(project, 'src/lib'), {recursive: true})
    const landed = inTerminal(['ssh'], path.join(project, 'src/lib'), 'pwd\nexit\n')
    expect(landed.output).toMatch(/^\/vm\/src\/lib$/m)
  })

  it('vm ssh [NAME] -c over a live shared connection takes the fast path (stdio and exit status exact); without one, the full command runs', async () => {
    const debug = {VM_DEBUG: '1'}
    // Opens (or reuses) web's shared connection; then the fast path runs over it.
    expect((await fixture.run(['ssh', 'web', '-c', 'true'])).code).toBe(0)
    const fast = await fixture.run(['ssh', '-c', 'echo out; echo err >&2; exit 7'], debug)
    expect(fast.code).toBe(7)
    expect(fast.stdout).toBe('out\n')
    expect(fast.stderr).toMatch(/^vm: ssh fast path: over the shared connection \S+\nerr\n$/)
    const named = await fixture.run(['ssh', 'web', '--command=hostname'], debug)
    expect(named.stdout).toBe('web\n')
    expect(named.stderr).toContain('ssh fast path: over the shared connection')
    // stdin reaches the command unchanged.
    const piped = spawnSync(process.execPath, [bin, 'ssh', 'web', '-c', 'cat'], {
      cwd: project,
      env: {...process.env, ...fixture.env, ...debug},
      input: 'line one\nline two\n',
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(piped.status).toBe(0)
    expect(piped.stdout).toBe('line one\nline two\n')
    expect(piped.stderr).toContain('ssh fast path: over the shared connection')
    // What the fast path does not handle goes to the full command.
    const full = await fixture.run(['ssh', '--workdir', '/tmp', '-c', 'pwd'], debug)
    expect(full.stdout).toBe('/tmp\n')
    expect(full.stderr).toContain('ssh fast path not taken (arguments it does not handle)')
    // A Vmfile changed since the last run is loaded again: a name it no longer has is the full command's error.
    const vmfile = path.join(project, 'Vmfile')
    const text = readFileSync(vmfile, 'utf8')
    writeFileSync(vmfile, text.replace('  db: {}\n', ''))
    try {
      const gone = await fixture.run(['ssh', 'db', '-c', 'true'], debug)
      expect(gone.code).not.toBe(0)
      expect(gone.stderr).toContain('ssh fast path not taken (no machine named "db" in the Vmfile)')
      expect(gone.stderr).toContain('No machine named "db"')
    } finally {
      writeFileSync(vmfile, text)
    }
    // The master gone (closed, socket removed): the full command runs and opens a new one.
    const webId = JSON.parse(readFileSync(path.join(project, '.vm/machines/web/machine.json'), 'utf8')).id as string
    const socket = sockets().find((file) => path.basename(file).startsWith(`${webId}-`))!
    spawnSync('ssh', ['-o', `ControlPath=${socket}`, '-O', 'exit', 'x'])
    expect(existsSync(socket)).toBe(false)
    const slow = await fixture.run(['ssh', '-c', 'echo slow'], debug)
    expect(slow.code, slow.stderr).toBe(0)
    expect(slow.stdout).toBe('slow\n')
    expect(slow.stderr).toContain('ssh fast path not taken (no live shared connection): running the full command')
    expect(masterPid(socket)).toBeGreaterThan(0)
    expect((await fixture.run(['ssh', '-c', 'echo fast again'], debug)).stderr).toContain('ssh fast path: over the shared connection')
  })

  it('one shared connection per machine, reused; a dead master never fails a command; halt closes it (last: it halts web)', async () => {
    const [webId, dbId] = ['web', 'db'].map(
      (name) => JSON.parse(readFileSync(path.join(project, '.vm/machines', name, 'machine.json'), 'utf8')).id as string,
    )
    const webSocket = sockets().find((socket) => path.basename(socket).startsWith(`${webId}-`))!
    expect(sockets().some((socket) => path.basename(socket).startsWith(`${dbId}-`))).toBe(true)
    expect(webSocket.length).toBeLessThanOrEqual(86)
    const pid = masterPid(webSocket)
    expect(pid).toBeGreaterThan(0)
    expect((await run(['ssh', '-c', 'echo again'])).stdout).toBe('again\n')
    expect(masterPid(webSocket)).toBe(pid)
    // A master killed outright leaves its socket behind: the next command still works (and opens a new one).
    process.kill(pid!, 'SIGKILL')
    const after = await run(['ssh', '-c', 'echo still'])
    expect(after.code, after.stderr).toBe(0)
    expect(after.stdout).toBe('still\n')
    expect(after.stderr).toBe('')
    const fresh = masterPid(webSocket)
    expect(fresh).toBeGreaterThan(0)
    expect(fresh).not.toBe(pid)
    expect((await run(['halt', 'web'])).code).toBe(0)
    expect(existsSync(webSocket)).toBe(false)
    expect(() => process.kill(fresh!, 0)).toThrow()
  })
})
