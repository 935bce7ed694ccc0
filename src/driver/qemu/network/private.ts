import {createHash} from 'node:crypto'
import {closeSync, constants, openSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {acquireFileLock} from '../../../state/file-lock.js'
import {InternalError} from '../../../errors/errors.js'
import {spawnDetached} from '../../../process/run.js'
import {packageRoot} from '../../../state/package-root.js'
import {vmPaths} from '../../../state/paths.js'
import {ensureRuntimeDir} from '../../../state/private-dir.js'

/**
 * Private networks: machines that name the same network share one switch (a small hub process
 * on a Unix socket in the runtime directory); a network without a name is the project's own.
 */
export function privateNetworkKey(name: string | undefined, projectDir: string): string {
  const id = name === undefined || name === '' ? `project:${projectDir}` : `name:${name}`
  return createHash('sha256').update(id).digest('hex').slice(0, 16)
}

export interface HubFiles {
  socket: string
  lock: string
  log: string
}

export function hubFiles(key: string, env: NodeJS.ProcessEnv = process.env): HubFiles {
  const dir = path.join(vmPaths(env).runtime, 'net')
  return {socket: path.join(dir, `${key}.sock`), lock: path.join(dir, `${key}.lock`), log: path.join(dir, `${key}.log`)}
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = net.connect(socket)
    client.once('connect', () => {
      client.destroy()
      resolve(true)
    })
    client.once('error', () => resolve(false))
  })
}

/** The hub script, next to the bundled CLI (dist/hub.js). */
function hubScript(): string {
  return path.join(packageRoot(), 'dist', 'hub.js')
}

/**
 * Makes sure the hub of each network runs and holds its lock until `release` is called, so a
 * hub that is about to exit for lack of machines cannot miss a QEMU that connects meanwhile.
 * Call `release` once QEMU has started.
 */
export async function holdPrivateNetworks(keys: string[], env: NodeJS.ProcessEnv = process.env): Promise<() => Promise<void>> {
  const unlocks: Array<() => Promise<void>> = []
  const release = async (): Promise<void> => {
    for (const unlock of unlocks.reverse()) await unlock()
  }
  try {
    for (const key of [...new Set(keys)].sort()) {
      const files = hubFiles(key, env)
      // The switch's socket, lock and log live in the private runtime directory.
      await ensureRuntimeDir('net', env)
      unlocks.push(await acquireFileLock(files.lock))
      if (await canConnect(files.socket)) continue
      const log = openSync(files.log, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
      try {
        await spawnDetached(process.execPath, [hubScript(), files.socket, files.lock], log)
      } finally {
        closeSync(log)
      }
      const deadline = Date.now() + 10_000
      while (!(await canConnect(files.socket))) {
        if (Date.now() > deadline)
          throw new InternalError(`The switch of a private network did not start (socket ${files.socket}); see ${files.log}`)
        await sleep(20)
      }
    }
  } catch (error) {
    await release()
    throw error
  }
  return release
}
