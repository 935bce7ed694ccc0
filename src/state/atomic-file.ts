import {randomBytes} from 'node:crypto'
import {constants} from 'node:fs'
import {open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

/**
 * Writes `file` so that a reader sees the old content or the new, never half, and so that a
 * link planted at the name (or at a predictable temp name) is never followed: the data goes
 * to a fresh temp file in the same directory, created with O_CREAT|O_EXCL|O_NOFOLLOW, which
 * then replaces the name with rename(2). rename replaces a symlink itself, not its target.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: {mode?: number} = {}): Promise<void> {
  const mode = options.mode ?? 0o600
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await open(temp, flags, mode)
  try {
    await handle.writeFile(data)
    // The umask may have narrowed the mode; a wider one asked for is set explicitly.
    await handle.chmod(mode)
    await handle.close()
    await rename(temp, file)
  } catch (error) {
    await handle.close().catch(() => undefined)
    await rm(temp, {force: true})
    throw error
  }
}

/**
 * Creates `file` only if nothing (not even a dangling link) has that name, with `data` in it;
 * false when the name is taken. The primitive under every lock and lease file.
 */
export async function createExclusive(file: string, data: string, mode = 0o600): Promise<boolean> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  let handle
  try {
    handle = await open(file, flags, mode)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    await handle.writeFile(data)
  } catch (error) {
    // A file that cannot hold its content (a full disk) is not left behind as a stale lock.
    await handle.close().catch(() => undefined)
    await rm(file, {force: true})
    throw error
  }
  await handle.close()
  return true
}
