import {constants, readFileSync} from 'node:fs'
import {link, lstat, readFile, rename, rm} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {createExclusive, moveAside, removeIfUnchanged, writeFileAtomic} from './atomic-file.js'
import {ensureStateDir} from './private-dir.js'
import {processCommandLine, processStartTime} from './process-check.js'

/**
 * The one kind of O_EXCL file vm uses for mutual exclusion: locks (a machine, the box store,
 * the global index, a private network's switch) and host-port leases. The file names its
 * holder: a process, by PID and start time, so a recycled PID never passes for the holder,
 * and, for leases, the machine that owns it.
 */
export interface Holder {
  pid: number
  /** The process's start time (/proc/PID/stat field 22); absent only in files older vm versions wrote. */
  start?: string
  /** Who the file is for beyond the process (a machine id, for leases). */
  owner?: string
}

/** The holder record of a live process (this one by default), for `owner`. */
export function holderOf(pid: number = process.pid, owner?: string): Holder {
  const start = processStartTime(pid)
  return {pid, ...(start === undefined ? {} : {start}), ...(owner === undefined ? {} : {owner})}
}

export function formatHolder(holder: Holder): string {
  return JSON.stringify({pid: holder.pid, start: holder.start, owner: holder.owner})
}

/**
 * The holder a lock or lease file names, or undefined for junk. Besides the current format,
 * reads the two that older vm versions wrote: a lock holding just a PID, and a lease
 * {"pid", "owner"}; neither has a start time (see holderAlive).
 */
export function parseHolder(content: string): Holder | undefined {
  const text = content.trim()
  if (/^\d+$/.test(text)) {
    const pid = Number(text)
    return Number.isSafeInteger(pid) && pid > 0 ? {pid} : undefined
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const {pid, start, owner} = value as Record<string, unknown>
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined
  if (start !== undefined && (typeof start !== 'string' || !/^\d+$/.test(start))) return undefined
  if (owner !== undefined && typeof owner !== 'string') return undefined
  return {pid, ...(start === undefined ? {} : {start}), ...(owner === undefined ? {} : {owner})}
}

/** Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on every Linux architecture vm runs on). */
const USER_HZ = 100
/** btime is whole seconds, and clocks drift: a process counts as older than a file within this margin. */
const START_SLACK_MS = 2000

/** When the process with start time `start` (clock ticks since boot) started, in ms since the epoch. */
function startedAtMs(start: string): number | undefined {
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]
    return btime === undefined ? undefined : Number(btime) * 1000 + (Number(start) * 1000) / USER_HZ
  } catch {
    return undefined
  }
}

/**
 * Whether the holder a file names is still running: a process with its PID runs, is not a
 * zombie, and is the same process: it has the start time the file records. A file of an
 * older vm version records none; its holder wrote it (or was handed it) after starting, so a
 * process that started after the file was last written (`writtenAtMs`) has only recycled the
 * PID. When that cannot be told, the holder counts as alive.
 */
export function holderAlive(holder: Holder, writtenAtMs: number): boolean {
  const start = processStartTime(holder.pid)
  if (start === undefined) return false
  if (holder.start !== undefined) return start === holder.start
  const startedAt = startedAtMs(start)
  return startedAt === undefined || startedAt <= writtenAtMs + START_SLACK_MS
}

/** What a lock or lease file holds right now. */
export type FileHolder =
  | {state: 'absent'}
  /** Something other than a lock file vm wrote (junk, a link, a directory): never a live holder. */
  | {state: 'junk'; content: string | undefined}
  | {state: 'held'; holder: Holder; content: string; alive: boolean}

export async function readHolder(file: string): Promise<FileHolder> {
  let writtenAt: number
  try {
    const stats = await lstat(file)
    // A link, a directory or a FIFO at the name is not read (a FIFO would block).
    if (!stats.isFile()) return {state: 'junk', content: undefined}
    writtenAt = stats.mtimeMs
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {state: 'absent'}
    throw error
  }
  let content: string
  try {
    content = await readFile(file, {encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return {state: 'absent'}
    if (code === 'ELOOP' || code === 'EISDIR') return {state: 'junk', content: undefined}
    throw error
  }
  const holder = parseHolder(content)
  if (holder === undefined) return {state: 'junk', content}
  return {state: 'held', holder, content, alive: holderAlive(holder, writtenAt)}
}

/**
 * Moves a non-file (a planted link, say) at `file` away, unless something else replaced it
 * since. A directory is left alone (the claim then fails): vm never deletes a tree it did not make.
 */
async function removeNonFile(file: string): Promise<void> {
  if ((await lstat(file).catch(() => undefined))?.isDirectory() !== false) return
  const aside = await moveAside(file)
  if (aside === undefined) return
  const stats = await lstat(aside)
  if (stats.isDirectory()) {
    await rename(aside, file).catch(() => undefined)
    return
  }
  // A regular file that took the name since it was looked at is put back (never over a newer one).
  if (stats.isFile()) await link(aside, file).catch(() => undefined)
  await rm(aside, {force: true})
}

/**
 * A short guard held while a stale file is removed, so that of several processes which all
 * found the same dead holder only one removes it, and none removes the fresh file another one
 * created in its place. Its own holder is only ever busy for a moment: a dead one is removed
 * at once, and after two seconds the caller goes on without it.
 */
async function holdTakeoverGuard(file: string): Promise<() => Promise<void>> {
  const guard = `${file}.takeover`
  const content = formatHolder(holderOf())
  const deadline = Date.now() + 2000
  while (Date.now() < deadline) {
    if (await createExclusive(guard, content)) return () => removeIfUnchanged(guard, content)
    const found = await readHolder(guard)
    if (found.state === 'held' && !found.alive) await removeIfUnchanged(guard, found.content)
    else if (found.state === 'junk' && found.content !== undefined) await removeIfUnchanged(guard, found.content)
    else if (found.state === 'junk') await removeNonFile(guard)
    else if (found.state === 'held') await sleep(10)
  }
  return async () => {}
}

/** Removes a lock or lease file whose holder is gone (`found`), if it still is that one. */
async function takeOver(file: string, found: Exclude<FileHolder, {state: 'absent'}>): Promise<void> {
  const release = await holdTakeoverGuard(file)
  try {
    // Still the file found stale (the same content, or still no file at all)?
    const now = await readHolder(file)
    if (now.state === 'absent' || now.content !== found.content) return
    if (found.content === undefined) await removeNonFile(file)
    else await removeIfUnchanged(file, found.content)
  } finally {
    await release()
  }
}

/** The outcome of one claim: the file is ours (with what it holds), or a live holder has it. */
export type Claim = {claimed: true; content: string} | {claimed: false; holder: Holder | undefined}

/**
 * One claim of a lock or lease file for `holder`: the file is created with O_EXCL (and follows
 * no link planted at its name), so of several processes at most one gets it. A file whose
 * holder is gone (a dead process, a recycled PID, junk) is taken over; so is one naming this
 * very process when `selfIsStale` (a lock this process left behind). A live holder is returned.
 * The directory must exist and be trusted by the caller.
 */
export async function claimFile(file: string, holder: Holder, options: {selfIsStale?: boolean} = {}): Promise<Claim> {
  const content = formatHolder(holder)
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await createExclusive(file, content)) return {claimed: true, content}
    const found = await readHolder(file)
    if (found.state === 'absent') continue
    if (found.state === 'held' && found.alive && !(options.selfIsStale === true && found.holder.pid === process.pid))
      return {claimed: false, holder: found.holder}
    await takeOver(file, found)
  }
  const last = await readHolder(file)
  return {claimed: false, holder: last.state === 'held' ? last.holder : undefined}
}

/**
 * Hands a held file to another process, which holds it from now on (a lease goes from the vm
 * process to the QEMU that binds the port, and lives as long as that QEMU). The new holder is
 * recorded with its start time like any holder. Written atomically, without following links.
 */
export async function handOver(file: string, pid: number, owner?: string): Promise<void> {
  await writeFileAtomic(file, formatHolder(holderOf(pid, owner)), {mode: 0o600})
}

/** Removes the file if `mine` says it is ours (a lease by its owner), and never one put there since. */
export async function releaseFile(file: string, mine: (holder: Holder) => boolean): Promise<void> {
  const found = await readHolder(file)
  if (found.state === 'held' && mine(found.holder)) await removeIfUnchanged(file, found.content)
}

/** Locks this process holds, so concurrent callers in one process wait for each other too. */
const heldHere = new Map<string, Promise<void>>()

export type LockAttempt = {held: true; release: () => Promise<void>} | {held: false; holder: number; argv: string[]}

/**
 * One try at a lock: a lock file naming this process (see claimFile). A lock whose holder is
 * gone (or is this process, left over) is taken over; a live holder is returned with its
 * command line. The lock file's directory must exist and be trusted by the caller.
 */
export async function tryFileLock(file: string): Promise<LockAttempt> {
  if (heldHere.has(file)) return {held: false, holder: process.pid, argv: processCommandLine(process.pid) ?? []}
  // Reserve the lock in this process in the same tick as the check above.
  let unlock = () => {}
  heldHere.set(file, new Promise<void>((resolve) => (unlock = resolve)))
  let claim: Claim = {claimed: false, holder: undefined}
  try {
    claim = await claimFile(file, holderOf(), {selfIsStale: true})
  } finally {
    if (!claim.claimed) {
      heldHere.delete(file)
      unlock()
    }
  }
  if (!claim.claimed) {
    const pid = claim.holder?.pid ?? 0
    return {held: false, holder: pid, argv: pid > 0 ? (processCommandLine(pid) ?? []) : []}
  }
  const {content} = claim
  let held = true
  const release = async (): Promise<void> => {
    if (!held) return
    held = false
    await removeIfUnchanged(file, content)
    heldHere.delete(file)
    unlock()
  }
  return {held: true, release}
}

/** The PID of the live process, other than this one, that holds the lock `file`. */
export async function lockHolderPid(file: string): Promise<number | undefined> {
  const found = await readHolder(file).catch(() => undefined)
  return found?.state === 'held' && found.alive && found.holder.pid !== process.pid ? found.holder.pid : undefined
}

/**
 * A waiting lock. A second caller (say, a second `vm box add` of the same box, or a `vm up`
 * while a private network's switch decides to exit) waits for the holder instead of failing;
 * a lock whose holder has died is taken over. The lock's directory is created private (0700).
 */
export async function acquireFileLock(
  file: string,
  options: {signal?: AbortSignal | undefined; onWait?: ((pid: number) => void) | undefined; pollMs?: number} = {},
): Promise<() => Promise<void>> {
  await ensureStateDir(path.dirname(file))
  let announced = false
  for (;;) {
    const inProcess = heldHere.get(file)
    if (inProcess !== undefined) {
      if (!announced) options.onWait?.(process.pid)
      announced = true
      await inProcess
      continue
    }
    const attempt = await tryFileLock(file)
    if (attempt.held) return attempt.release
    if (attempt.holder === process.pid) continue
    if (!announced && attempt.holder > 0) options.onWait?.(attempt.holder)
    announced = true
    await sleep(options.pollMs ?? 200, undefined, {signal: options.signal})
  }
}
