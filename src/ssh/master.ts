import {createHash} from 'node:crypto'
import {lstat, readdir, rm} from 'node:fs/promises'
import {connect} from 'node:net'
import path from 'node:path'

import {runProgram} from '../process/run.js'
import {vmPaths} from '../state/paths.js'
import {ensureRuntimeDir} from '../state/private-dir.js'
import {masterExitArgs, type SshTarget} from './options.js'

/**
 * One SSH connection per machine, reused by every command vm runs there (OpenSSH's
 * ControlMaster): the first command opens it and leaves it in the background for a short
 * while (ControlPersist), later ones skip the key exchange. The control sockets live in the
 * private runtime directory, one per machine and per way of logging in (the hash of the
 * target), so a connection made with one key is never reused by a command meant to use another.
 *
 * A master is an optimisation, never a requirement: ssh connects directly when the socket is
 * missing, refuses connections or is too long for a Unix socket, and vm closes the master
 * whenever the guest's state changes under it (halt, reload, destroy, snapshot restore).
 */

/** The directory of control sockets, below the runtime directory. */
export const MASTER_SUBDIR = 'ssh'

/**
 * The longest ControlPath vm uses. A Unix socket path holds at most 104 bytes (macOS; 108 on
 * Linux) with its final NUL, and ssh first binds the socket under the path plus a 17-byte
 * random suffix before renaming it into place.
 */
export const MAX_CONTROL_PATH = 104 - 1 - 17

/** The socket's file name: the machine's id, then a hash of everything that decides how ssh logs in. */
function socketName(machineId: string, target: SshTarget): string {
  const login = JSON.stringify([
    target.host,
    target.port,
    target.jump ?? null,
    target.user,
    target.identityFiles,
    target.knownHostsFile,
    target.hostKeyAlias,
    target.strictHostKeyChecking,
  ])
  return `${machineId}-${createHash('sha256').update(login).digest('hex').slice(0, 10)}`
}

/**
 * Where the target's master socket goes, or undefined when the target must not share a
 * connection: not a machine's, its host key not pinned yet (first boot), agent forwarding
 * (the agent of whichever command opened the master would be forwarded), or a path too long
 * for a Unix socket. Pure: nothing is created.
 */
export function controlPathFor(target: SshTarget, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (target.machineId === undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(target.machineId)) return undefined
  if (target.strictHostKeyChecking !== 'yes' || target.forwardAgent === true) return undefined
  const file = path.join(vmPaths(env).runtime, MASTER_SUBDIR, socketName(target.machineId, target))
  return Buffer.byteLength(file) <= MAX_CONTROL_PATH ? file : undefined
}

/** controlPathFor, with the socket directory created private to this user; undefined when that fails. */
export async function prepareControlPath(target: SshTarget, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const file = controlPathFor(target, env)
  if (file === undefined) return undefined
  try {
    await ensureRuntimeDir(MASTER_SUBDIR, env)
    return file
  } catch {
    return undefined
  }
}

/** The control sockets of the machine `machineId` that exist now. */
export async function masterSockets(machineId: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const dir = path.join(vmPaths(env).runtime, MASTER_SUBDIR)
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  return names.filter((name) => name.startsWith(`${machineId}-`) && !name.includes('.')).map((name) => path.join(dir, name))
}

/**
 * Closes the machine's shared SSH connections (and removes a socket left by a master that
 * died). Call it whenever the guest changes under its connections: halt, reload, destroy,
 * snapshot restore, resume. Never fails: a master that cannot be reached is already gone.
 */
export async function closeMaster(machineId: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const socket of await masterSockets(machineId, env)) {
    try {
      await runProgram('ssh', masterExitArgs(socket), {timeoutMs: 5000})
    } catch {
      // No master answers there: the socket (if still there) is stale.
    }
    await rm(socket, {force: true})
  }
}

/**
 * The socket of a master that answers now for `target` (the control path vm would use for it),
 * or undefined: none, not a socket of this user's, or a stale one (its master died). The probe
 * is a bare connect(): the master accepts it and drops it without a word, and no ssh runs.
 */
export async function liveMaster(target: SshTarget, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const file = controlPathFor(target, env)
  if (file === undefined) return undefined
  try {
    const stats = await lstat(file)
    const uid = typeof process.getuid === 'function' ? process.getuid() : 0
    if (!stats.isSocket() || stats.uid !== uid) return undefined
  } catch {
    return undefined
  }
  const answers = await new Promise<boolean>((resolve) => {
    const socket = connect(file)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
  return answers ? file : undefined
}
