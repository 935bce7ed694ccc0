import {readFile, readdir, rm} from 'node:fs/promises'
import path from 'node:path'

import {createExclusive} from './atomic-file.js'
import {ensureRuntimeDir} from './private-dir.js'

/** The kernel's id of the current host boot; a new one after every reboot. */
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id'

/**
 * Whether this is the first time `key` is asked about since the host booted, across every vm
 * process of this user: the first caller (and only it) gets true. The marker is a file named
 * by the key and the kernel's boot id in vm's private runtime directory, made with an
 * exclusive create, so two machines booting at once cannot both win. Markers of earlier boots
 * are removed. When the boot id cannot be read, every call is the first (a notice said too
 * often beats one never said).
 */
export async function firstTimeThisBoot(key: string, options: {env?: NodeJS.ProcessEnv; bootIdFile?: string} = {}): Promise<boolean> {
  let boot: string
  try {
    boot = (await readFile(options.bootIdFile ?? BOOT_ID_FILE, 'utf8')).trim()
  } catch {
    return true
  }
  if (!/^[0-9a-f-]+$/i.test(boot)) return true
  const dir = await ensureRuntimeDir('notices', options.env)
  const name = `${key}.${boot}`
  const first = await createExclusive(path.join(dir, name), `${new Date().toISOString()}\n`)
  if (first) {
    for (const old of await readdir(dir).catch(() => [] as string[]))
      if (old.startsWith(`${key}.`) && old !== name) await rm(path.join(dir, old), {force: true})
  }
  return first
}
