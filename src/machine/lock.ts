import {mkdir, open, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {VmError} from '../cli/errors.js'
import {processCommandLine} from '../state/process-check.js'

/**
 * An exclusive lock on a machine for one vm process: a file created with O_EXCL holding the
 * holder's PID. A lock whose holder is gone is taken over; a live holder is named in the error.
 */
export async function lockMachine(file: string, machine: string): Promise<() => Promise<void>> {
  await mkdir(path.dirname(file), {recursive: true})
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx')
      await handle.writeFile(String(process.pid))
      await handle.close()
      return async () => {
        await rm(file, {force: true})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
      const argv = Number.isInteger(pid) && pid > 0 ? processCommandLine(pid) : undefined
      if (argv === undefined || pid === process.pid) {
        await rm(file, {force: true})
        continue
      }
      throw new VmError(`Machine ${machine} is busy: vm process ${pid} (${argv.join(' ').slice(0, 120)}) is acting on it`, {
        code: 'MACHINE_LOCKED',
        exit: 'locked',
        hint: `Wait for it to finish, or stop it (kill ${pid}) if it is stuck.`,
      })
    }
  }
  throw new VmError(`Cannot lock machine ${machine} (${file})`, {code: 'MACHINE_LOCKED', exit: 'locked'})
}

/** The PID of the live vm process holding the machine lock, if one does. */
export async function lockHolder(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined
  return processCommandLine(pid) === undefined ? undefined : pid
}
