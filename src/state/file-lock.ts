import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {createExclusive, removeIfUnchanged} from './atomic-file.js'
import {ensureStateDir} from './private-dir.js'
import {processCommandLine} from './process-check.js'

/** Locks this process holds, so concurrent callers in one process wait for each other too. */
const heldHere = new Map<string, Promise<void>>()

export type LockAttempt = {held: true; release: () => Promise<void>} | {held: false; holder: number; argv: string[]}

function holderOf(content: string): number {
  const pid = Number(content.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : 0
}

/**
 * One try at a lock: a file created with O_CREAT|O_EXCL|O_NOFOLLOW holding the holder's PID,
 * so a link planted at its name is never followed. A lock whose holder is gone (or is this
 * process, left over) is taken over; a live holder is returned with its command line.
 * The lock file's directory must exist and be trusted by the caller.
 */
export async function tryFileLock(file: string): Promise<LockAttempt> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (heldHere.has(file)) return {held: false, holder: process.pid, argv: processCommandLine(process.pid) ?? []}
    // Reserve the lock in this process in the same tick as the check above.
    let unlock = () => {}
    heldHere.set(file, new Promise<void>((resolve) => (unlock = resolve)))
    let created = false
    try {
      created = await createExclusive(file, String(process.pid))
    } finally {
      if (!created) {
        heldHere.delete(file)
        unlock()
      }
    }
    if (created) {
      let held = true
      const release = async (): Promise<void> => {
        if (!held) return
        held = false
        await rm(file, {force: true})
        heldHere.delete(file)
        unlock()
      }
      return {held: true, release}
    }
    // createExclusive makes the file appear with its PID in it: a file without one is junk.
    const content = await readFile(file, 'utf8').catch(() => undefined)
    if (content === undefined) continue
    const pid = holderOf(content)
    const argv = pid > 0 && pid !== process.pid ? processCommandLine(pid) : undefined
    if (argv !== undefined) return {held: false, holder: pid, argv}
    await removeIfUnchanged(file, content)
  }
  return {held: false, holder: 0, argv: []}
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
