import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {lockHolder, lockMachine} from '../../src/machine/lock.js'
import {leaseFile, leaseHostPort, leasePort, leasesDir, releaseLease, transferLease} from '../../src/network/ports.js'
import {acquireFileLock, parseHolder} from '../../src/state/file-lock.js'
import {processStartTime} from '../../src/state/process-check.js'

const scratch = (): string => mkdtempSync(path.join(tmpdir(), 'vm-filelock-'))
// Ports well away from the default ranges and from the other unit tests.
const range: [number, number] = [46500, 46509]
const loopback = (port: number) => ({protocol: 'tcp', hostIp: '127.0.0.1', port}) as const

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

/** A live process other than this one, started now. */
async function liveProcess(): Promise<number> {
  const child = spawn('sleep', ['30'], {stdio: 'ignore'})
  children.push(child)
  await new Promise((resolve) => child.once('spawn', resolve))
  return child.pid!
}

/** A zombie: a child of a `sleep` that never reaps it. */
async function zombieProcess(): Promise<number> {
  const child = spawn('sh', ['-c', 'true & echo $!; exec sleep 30'], {stdio: ['ignore', 'pipe', 'ignore']})
  children.push(child)
  const pid = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(String(chunk)))))
  for (let wait = 0; wait < 100 && processStartTime(pid) !== undefined; wait++) await new Promise((resolve) => setTimeout(resolve, 20))
  return pid
}

/** A start time that is not the process's own: what a file of a recycled PID holds. */
const otherStart = (pid: number): string => String(Number(processStartTime(pid)) + 1)

/** Sets a file's modification time to long ago (before any process now running started). */
const writtenLongAgo = (file: string): void => utimesSync(file, new Date('2001-01-01'), new Date('2001-01-01'))

describe('lock and lease files name their holder by PID and start time', () => {
  it('a lease whose PID now belongs to another process (another start time) is free', async () => {
    const dir = scratch()
    writeFileSync(leaseFile(dir, loopback(range[0])), JSON.stringify({pid: process.pid, start: otherStart(process.pid), owner: 'old'}))
    const holder = await liveProcess()
    writeFileSync(leaseFile(dir, loopback(range[0] + 1)), JSON.stringify({pid: holder, start: otherStart(holder), owner: 'old'}))
    expect(await leasePort(dir, 'new', [range[0], range[0]])).toBe(range[0])
    expect(await leasePort(dir, 'new', [range[0] + 1, range[0] + 1])).toBe(range[0] + 1)
    expect(parseHolder(readFileSync(leaseFile(dir, loopback(range[0])), 'utf8'))).toEqual({
      pid: process.pid,
      start: processStartTime(process.pid),
      owner: 'new',
    })
  })

  it('a lease whose holder is alive with its own start time is held, and one held by a zombie is free', async () => {
    const dir = scratch()
    const holder = await liveProcess()
    writeFileSync(leaseFile(dir, loopback(range[0])), JSON.stringify({pid: holder, start: processStartTime(holder), owner: 'a'}))
    expect(await leasePort(dir, 'b', range)).toBe(range[0] + 1)
    const zombie = await zombieProcess()
    writeFileSync(leaseFile(dir, loopback(range[0] + 2)), JSON.stringify({pid: zombie, start: '1', owner: 'a'}))
    writeFileSync(leaseFile(dir, loopback(range[0] + 3)), String(zombie))
    expect(await leasePort(dir, 'b', [range[0] + 2, range[0] + 2])).toBe(range[0] + 2)
    expect(await leasePort(dir, 'b', [range[0] + 3, range[0] + 3])).toBe(range[0] + 3)
  })

  it('a transferred lease names the new holder with its start time, and is free once that process is gone', async () => {
    const dir = scratch()
    const port = await leasePort(dir, 'a', range)
    const qemu = await liveProcess()
    await transferLease(dir, port, 'a', qemu)
    expect(parseHolder(readFileSync(leaseFile(dir, loopback(port)), 'utf8'))).toEqual({
      pid: qemu,
      start: processStartTime(qemu),
      owner: 'a',
    })
    // Held by the new holder, not by this process: another lease of this process does not get it.
    expect(await leaseHostPort(dir, 'b', loopback(port))).toBe(false)
    children.pop()!.kill('SIGKILL')
    for (let wait = 0; wait < 100 && processStartTime(qemu) !== undefined; wait++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await leaseHostPort(dir, 'b', loopback(port))).toBe(true)
  })

  it('a lease of the old format ({"pid", "owner"}, no start time) is held while its process runs, free when the PID was recycled', async () => {
    const dir = scratch()
    const holder = await liveProcess()
    // Written after its holder started: read as held, and released by its owner.
    writeFileSync(leaseFile(dir, loopback(range[0])), JSON.stringify({pid: holder, owner: 'a'}))
    expect(await leaseHostPort(dir, 'b', loopback(range[0]))).toBe(false)
    await releaseLease(dir, range[0], 'b')
    expect(existsSync(leaseFile(dir, loopback(range[0])))).toBe(true)
    await releaseLease(dir, range[0], 'a')
    expect(existsSync(leaseFile(dir, loopback(range[0])))).toBe(false)
    // Written before the process with that PID started: that process is not the holder.
    writeFileSync(leaseFile(dir, loopback(range[0] + 1)), JSON.stringify({pid: holder, owner: 'a'}))
    writtenLongAgo(leaseFile(dir, loopback(range[0] + 1)))
    expect(await leaseHostPort(dir, 'b', loopback(range[0] + 1))).toBe(true)
  })

  it('a lease file that is junk, or a link planted at its name, is taken over without following the link', async () => {
    const dir = scratch()
    writeFileSync(leaseFile(dir, loopback(range[0])), 'not a lease')
    const victim = path.join(dir, 'victim')
    writeFileSync(victim, 'precious\n')
    symlinkSync(victim, leaseFile(dir, loopback(range[0] + 1)))
    expect(await leaseHostPort(dir, 'a', loopback(range[0]))).toBe(true)
    expect(await leaseHostPort(dir, 'a', loopback(range[0] + 1))).toBe(true)
    expect(readFileSync(victim, 'utf8')).toBe('precious\n')
    // A directory at the name is not vm's to delete: the port is just not available.
    mkdirSync(path.join(leaseFile(dir, loopback(range[0] + 2)), 'inside'), {recursive: true})
    expect(await leaseHostPort(dir, 'a', loopback(range[0] + 2))).toBe(false)
    expect(existsSync(path.join(leaseFile(dir, loopback(range[0] + 2)), 'inside'))).toBe(true)
    rmSync(leaseFile(dir, loopback(range[0] + 2)), {recursive: true})
    expect(readdirSync(dir).sort()).toEqual(
      [path.basename(leaseFile(dir, loopback(range[0]))), path.basename(leaseFile(dir, loopback(range[0] + 1))), 'victim'].sort(),
    )
  })

  it('of many claims of one stale lease at the same moment, exactly one wins', async () => {
    for (let round = 0; round < 10; round++) {
      const dir = scratch()
      writeFileSync(leaseFile(dir, loopback(range[0])), JSON.stringify({pid: process.pid, start: otherStart(process.pid), owner: 'old'}))
      const owners = ['a', 'b', 'c', 'd', 'e', 'f']
      const won = await Promise.all(owners.map((owner) => leaseHostPort(dir, owner, loopback(range[0]))))
      expect(won.filter(Boolean)).toHaveLength(1)
      const holder = parseHolder(readFileSync(leaseFile(dir, loopback(range[0])), 'utf8'))
      expect(holder?.owner).toBe(owners[won.indexOf(true)])
      expect(readdirSync(dir)).toEqual([path.basename(leaseFile(dir, loopback(range[0])))])
    }
  })

  it('the lease directory is the private ports directory of the runtime directory', async () => {
    const runtime = path.join(scratch(), 'run')
    const dir = await leasesDir({VM_RUNTIME_DIR: runtime})
    expect(dir).toBe(path.join(runtime, 'ports'))
    expect(readdirSync(runtime)).toEqual(['ports'])
  })
})

describe('machine locks use the same holder check', () => {
  it('a lock of the old format (a bare PID) naming a process that started after it was written is taken over', async () => {
    const dir = scratch()
    const file = path.join(dir, 'lock')
    const holder = await liveProcess()
    writeFileSync(file, String(holder))
    writtenLongAgo(file)
    expect(await lockHolder(file)).toBeUndefined()
    const release = await lockMachine(file, 'web')
    expect(parseHolder(readFileSync(file, 'utf8'))).toEqual({pid: process.pid, start: processStartTime(process.pid)})
    await release()
    expect(existsSync(file)).toBe(false)
  })

  it('a lock naming a live PID with another start time is taken over; one with the right start time is busy', async () => {
    const dir = scratch()
    const file = path.join(dir, 'lock')
    const holder = await liveProcess()
    writeFileSync(file, JSON.stringify({pid: holder, start: otherStart(holder)}))
    expect(await lockHolder(file)).toBeUndefined()
    await (
      await lockMachine(file, 'web')
    )()
    writeFileSync(file, JSON.stringify({pid: holder, start: processStartTime(holder)}))
    expect(await lockHolder(file)).toBe(holder)
    await expect(lockMachine(file, 'web')).rejects.toThrow(new RegExp(`Machine web is busy: vm process ${holder} \\(sleep 30\\)`))
  })

  it('a lock held by a zombie is taken over', async () => {
    const dir = scratch()
    const file = path.join(dir, 'lock')
    writeFileSync(file, String(await zombieProcess()))
    await (
      await acquireFileLock(file)
    )()
  })

  it('releasing a lock never removes one that another process took over meanwhile', async () => {
    const dir = scratch()
    const file = path.join(dir, 'lock')
    const release = await lockMachine(file, 'web')
    const other = await liveProcess()
    const theirs = JSON.stringify({pid: other, start: processStartTime(other)})
    writeFileSync(file, theirs)
    await release()
    expect(readFileSync(file, 'utf8')).toBe(theirs)
  })
})
