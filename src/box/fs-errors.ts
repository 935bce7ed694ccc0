import type {FileHandle} from 'node:fs/promises'

import {UserError} from '../errors/errors.js'
import {quoteValue} from './fields.js'

/**
 * Filesystem failures on the user's data (the box store, the download cache, a file being
 * added) become UserErrors that name the path and say what to do; none escapes as a crash.
 */
export function isFsError(error: unknown): error is NodeJS.ErrnoException {
  const errno = error as NodeJS.ErrnoException | undefined
  return errno instanceof Error && typeof errno.code === 'string' && /^E[A-Z0-9]+$/.test(errno.code) && typeof errno.syscall === 'string'
}

/** A UserError for `error` met while doing `action` (e.g. "write the download cache") on `file`. */
export function fsUserError(error: NodeJS.ErrnoException, action: string, file: string | undefined = error.path): UserError {
  const where = file === undefined ? '' : ` ${quoteValue(file)}`
  switch (error.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new UserError(`No space left on the disk: cannot ${action}${where}`, {
        code: 'DISK_FULL',
        hint: 'Free some space (vm box prune removes boxes no machine uses), then run the command again.',
        cause: error,
        data: {path: file},
      })
    case 'ENAMETOOLONG':
      return new UserError(`Cannot ${action}${where}: the name is too long for the filesystem`, {
        code: 'NAME_TOO_LONG',
        hint: 'Use a shorter path (VM_HOME, VM_BOXES_DIR or VM_CACHE_DIR move vm files elsewhere).',
        cause: error,
        data: {path: file},
      })
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new UserError(`Cannot ${action}${where}: permission denied${error.code === 'EROFS' ? ' (read-only filesystem)' : ''}`, {
        code: 'PERMISSION_DENIED',
        hint: 'Check the ownership and mode of that path, or point VM_HOME elsewhere.',
        cause: error,
        data: {path: file},
      })
    case 'ENOENT':
      return new UserError(`Cannot ${action}${where}: no such file or directory`, {code: 'NOT_FOUND', cause: error, data: {path: file}})
    case 'EISDIR':
      return new UserError(`Cannot ${action}${where}: it is a directory`, {code: 'IS_DIRECTORY', cause: error, data: {path: file}})
    default:
      return new UserError(`Cannot ${action}${where}: ${error.message}`, {code: 'FILE_ERROR', cause: error, data: {path: file}})
  }
}

/** Runs `operation`, turning a filesystem failure into a UserError (see fsUserError). */
export async function onUserData<T>(action: string, file: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    if (isFsError(error)) throw fsUserError(error, action, file)
    throw error
  }
}

/** Writes all of `data` at the handle's position (a write near a full disk may be short). */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let done = 0
  while (done < data.length) {
    const {bytesWritten} = await handle.write(data, done, data.length - done)
    if (bytesWritten === 0) throw Object.assign(new Error('no space left on device'), {code: 'ENOSPC', syscall: 'write'})
    done += bytesWritten
  }
}
