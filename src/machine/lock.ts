import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {VmError} from '../errors/errors.js'
import {tryFileLock} from '../state/file-lock.js'
import {processCommandLine} from '../state/process-check.js'
import {ensureStateDir} from '../state/private-dir.js'

/**
 * An exclusive lock on a machine for one vm process (the lock file in the machine's directory,
 * which is made private first). A lock whose holder is gone is taken over; a live holder is
 * named in the error.
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
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined
  return processCommandLine(pid) === undefined ? undefined : pid
}
