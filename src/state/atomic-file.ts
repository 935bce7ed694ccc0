import {randomBytes} from 'node:crypto'
import {constants} from 'node:fs'
import {link, open, readFile, rename, rm} from 'node:fs/promises'
import path from 'node:path'

/**
 * Writes `file` so that a reader sees the old content or the new, never half, and so that a
 * link planted at the name (or at a predictable temp name) is never followed: the data goes
 * to a fresh temp file in the same directory, created with O_CREAT|O_EXCL|O_NOFOLLOW, which
 * then replaces the name with rename(2). rename replaces a symlink itself, not its target.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: {mode?: number} = {}): Promise<void> {
  const temp = await writeTemp(file, data, options.mode ?? 0o600)
  try {
    await rename(temp, file)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
}

/** A fresh temp file beside `file`, created O_CREAT|O_EXCL|O_NOFOLLOW, holding `data`. */
async function writeTemp(file: string, data: string | Uint8Array, mode: number): Promise<string> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  try {
    await handle.writeFile(data)
    // The umask may have narrowed the mode; the mode asked for is set explicitly.
    await handle.chmod(mode)
    await handle.close()
  } catch (error) {
    await handle.close().catch(() => undefined)
    await rm(temp, {force: true})
    throw error
  }
  return temp
}

/**
 * Creates `file` only if nothing (not even a dangling link) has that name, with `data` in it;
 * false when the name is taken. The primitive under every lock and lease file. The content is
 * written to a temp file first and hard-linked to the name (link(2) fails on any existing name
 * and follows no link), so nobody ever reads the file empty or half-written.
 */
export async function createExclusive(file: string, data: string, mode = 0o600): Promise<boolean> {
  const temp = await writeTemp(file, data, mode)
  try {
    await link(temp, file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    await rm(temp, {force: true})
  }
}

/**
 * Renames `file` to a name of its own beside it, so that what is there can be examined without
 * another process replacing it meanwhile; undefined when there is no such file.
 */
export async function moveAside(file: string): Promise<string | undefined> {
  const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.stale`
  try {
    await rename(file, aside)
    return aside
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Removes `file` only if it still holds `expected` (a lock or lease whose holder is gone), and
 * never a fresh one that another process put there since it was read: the file is moved aside
 * first, checked, and put back if it was not the one meant.
 */
export async function removeIfUnchanged(file: string, expected: string): Promise<void> {
  const aside = await moveAside(file)
  if (aside === undefined) return
  try {
    const content = await readFile(aside, 'utf8').catch(() => undefined)
    if (content !== expected) await link(aside, file).catch(() => undefined)
  } finally {
    await rm(aside, {force: true})
  }
}
