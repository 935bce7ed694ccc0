import path from 'node:path'

import {VmError} from '../errors/errors.js'
import {lockHolderPid, tryFileLock} from '../state/file-lock.js'
import {ensureStateDir} from '../state/private-dir.js'

/**
 * An exclusive lock on a machine for one vm process: a lock file (src/state/file-lock.ts) in
 * the machine's directory, which is made private first. A lock whose holder is gone (or whose
 * PID now belongs to another process) is taken over; a live holder is named in the error.
 */
export async function lockMachine(file: string, machine: string): Promise<() => Promise<void>> {
  await ensureStateDir(path.dirname(file))
  const attempt = await tryFileLock(file)
  if (attempt.held) return attempt.release
  if (attempt.holder === 0) throw new VmError(`Cannot lock machine ${machine} (${file})`, {code: 'MACHINE_LOCKED', exit: 'locked'})
  throw new VmError(`Machine ${machine} is busy: vm process ${attempt.holder} (${attempt.argv.join(' ').slice(0, 120)}) is acting on it`, {
    code: 'MACHINE_LOCKED',
    exit: 'locked',
    hint: `Wait for it to finish, or stop it (kill ${attempt.holder}) if it is stuck.`,
  })
}

/** The PID of the live vm process holding the machine lock, if one does. */
export async function lockHolder(file: string): Promise<number | undefined> {
  return lockHolderPid(file)
}
