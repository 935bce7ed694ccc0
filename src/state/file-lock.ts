import {mkdir, open, readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {processCommandLine} from './process-check.js'

/** Locks this process holds, so concurrent callers in one process wait for each other too. */
const heldHere = new Map<string, Promise<void>>()

/**
 * A waiting lock: a file created with O_EXCL holding the holder's PID. A second caller (say, a
 * second `vm box add` of the same box, or a `vm up` while a private network's switch decides
 * to exit) waits for the holder instead of failing; a lock whose holder has died is taken over.
 */
export async function acquireFileLock(
  file: string,
  options: {signal?: AbortSignal | undefined; onWait?: ((pid: number) => void) | undefined; pollMs?: number} = {},
): Promise<() => Promise<void>> {
  await mkdir(path.dirname(file), {recursive: true})
  let announced = false
  for (;;) {
    const inProcess = heldHere.get(file)
    if (inProcess !== undefined) {
      if (!announced) options.onWait?.(process.pid)
      announced = true
      await inProcess
      continue
    }
    // Reserve the lock in this process in the same tick as the check above.
    let unlock = () => {}
    heldHere.set(file, new Promise<void>((resolve) => (unlock = resolve)))
    try {
      const handle = await open(file, 'wx')
      try {
        await handle.writeFile(String(process.pid))
      } catch (error) {
        // A lock that cannot hold its PID (a full disk) is not left behind.
        await handle.close().catch(() => undefined)
        await rm(file, {force: true})
        throw error
      }
      await handle.close()
      let held = true
      return async () => {
        if (!held) return
        held = false
        await rm(file, {force: true})
        heldHere.delete(file)
        unlock()
      }
    } catch (error) {
      heldHere.delete(file)
      unlock()
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
    const alive = Number.isInteger(pid) && pid > 0 && pid !== process.pid && processCommandLine(pid) !== undefined
    if (!alive) {
      // An empty file may be a holder that has not written its PID yet: give it a moment.
      if (pid === 0) await sleep(50, undefined, {signal: options.signal})
      else await rm(file, {force: true})
      if (pid === 0 && (await readFile(file, 'utf8').catch(() => 'gone')) === '') await rm(file, {force: true})
      continue
    }
    if (!announced) options.onWait?.(pid)
    announced = true
    await sleep(options.pollMs ?? 200, undefined, {signal: options.signal})
  }
}
