import {existsSync} from 'node:fs'
import path from 'node:path'

export const VMFILE_NAME = 'Vmfile'

/** Nearest directory at or above `start` holding a Vmfile, like git finds .git. */
export function findVmfile(start: string): string | undefined {
  let dir = path.resolve(start)
  for (;;) {
    const candidate = path.join(dir, VMFILE_NAME)
    if (existsSync(candidate)) return candidate
    const parent = path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}
