import {createHash} from 'node:crypto'
import {connect} from 'node:net'
import path from 'node:path'

import {runProgram} from '../../process/run.js'
import {MAX_CONTROL_PATH} from '../../ssh/master.js'
import {controlOptions, type JumpHost} from '../../ssh/options.js'
import {ensureRuntimeDir} from '../../state/private-dir.js'
import {sshTunnelPlan, type SshTunnelPlan} from './uri.js'

/**
 * One connection per libvirt host, shared by every virsh command of vm. `virsh -c
 * qemu+ssh://...` logs in anew for each command (key exchange, authentication, a session that
 * starts libvirt's helper on the host): over a second each on a busy host, and vm runs dozens
 * of commands per boot. Instead vm keeps an OpenSSH master connection to the host
 * (ControlMaster, closed 60 s after its last use, like the guests' shared connections) that
 * forwards a Unix socket in vm's private runtime directory to the daemon's socket there, and
 * virsh talks to that socket (qemu+unix:///system?socket=...): a command costs a channel in
 * the open connection. The login is the user's ssh's, as libvirt's ssh transport does it (ssh
 * from PATH, the user's ssh config and agent, the URI's user, port and keyfile).
 *
 * Sharing is an optimisation only: when the tunnel cannot be made (ssh needs a password, the
 * socket is elsewhere), virsh gets the URI as written, and a command that cannot reach the
 * host through the tunnel is run once more that way (virsh.ts), whose error names the host.
 */

/** The runtime subdirectory of the control sockets and forwarded sockets of libvirt hosts. */
export const TUNNEL_SUBDIR = 'libvirt'

/** The control socket and forwarded socket of a URI in `runtimeDir`; undefined when a path is too long for a Unix socket. */
export function tunnelFiles(runtimeDir: string, uri: string): {control: string; socket: string} | undefined {
  const key = createHash('sha256').update(uri).digest('hex').slice(0, 16)
  const control = path.join(runtimeDir, `${key}.ssh`)
  const socket = path.join(runtimeDir, `${key}.sock`)
  if (Buffer.byteLength(control) > MAX_CONTROL_PATH || Buffer.byteLength(socket) > MAX_CONTROL_PATH) return undefined
  return {control, socket}
}

/** Seconds between the tunnel master's keep-alive probes (three unanswered end it). */
export const TUNNEL_ALIVE_SECONDS = 3

/** The URI virsh uses to reach the daemon through a forwarded socket. */
export function tunnelledUri(socket: string): string {
  return `qemu+unix:///system?socket=${socket}`
}

/**
 * The ssh arguments of each step (pure): `check` asks whether a master answers on the control
 * socket; `open` logs in (the master goes to the background and stays; the login itself only
 * checks that the daemon's socket is there); `forward` has the master listen on `socket`.
 */
export function tunnelCommands(
  plan: SshTunnelPlan,
  files: {control: string; socket: string},
): Record<'check' | 'open' | 'forward', string[]> {
  const base = [
    // Before controlOptions (ssh keeps the first value of an option): a host that goes dark ends
    // the master within ~10 s, which closes the forwarded socket, so virsh fails at once and the
    // command is run again over the URI itself instead of waiting on a dead connection.
    '-o',
    `ServerAliveInterval=${TUNNEL_ALIVE_SECONDS}`,
    '-o',
    'ServerAliveCountMax=3',
    ...controlOptions(files.control),
    '-o',
    'BatchMode=yes',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    'StreamLocalBindUnlink=yes',
    '-o',
    'ConnectTimeout=15',
    ...plan.loginOptions,
  ]
  const quoted = `'${plan.remoteSocket.replaceAll("'", "'\\''")}'`
  return {
    check: [...base, '-O', 'check', plan.destination],
    open: [...base, '-T', '--', plan.destination, `test -S ${quoted}`],
    forward: [...base, '-O', 'forward', '-L', `${files.socket}:${plan.remoteSocket}`, plan.destination],
  }
}

/** Whether something accepts connections on the Unix socket `file` now. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(file)
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

const tunnels = new Map<string, Promise<string | undefined>>()

/** The tunnelled URI for `uri` (made once per process and URI), or undefined: use `uri` itself. */
export function tunnelFor(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  let found = tunnels.get(uri)
  if (found === undefined) {
    found = openTunnel(uri, env).catch(() => undefined)
    tunnels.set(uri, found)
  }
  return found
}

/**
 * The jump host of `uri`'s guests, naming the tunnel's control socket when vm keeps one for
 * that host: ssh to a guest then opens its channel in that connection (options.ts renderJump).
 */
export async function jumpVia(
  uri: string,
  jump: JumpHost | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<JumpHost | undefined> {
  if (jump === undefined || sshTunnelPlan(uri) === undefined) return jump
  const files = tunnelFiles(await ensureRuntimeDir(TUNNEL_SUBDIR, env), uri)
  return files === undefined ? jump : {...jump, controlPath: files.control}
}

/** Whether the tunnel of `uri` (made by this process or another) still accepts connections. */
export async function tunnelAnswers(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const files = tunnelFiles(await ensureRuntimeDir(TUNNEL_SUBDIR, env), uri)
  return files !== undefined && answers(files.socket)
}

/** Forgets the tunnel of `uri` in this process (it failed): the next command makes it again. */
export function dropTunnel(uri: string): void {
  tunnels.delete(uri)
}

async function openTunnel(uri: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const plan = sshTunnelPlan(uri)
  if (plan === undefined) return undefined
  const files = tunnelFiles(await ensureRuntimeDir(TUNNEL_SUBDIR, env), uri)
  if (files === undefined) return undefined
  // A tunnel another vm opened (within the last minute) is used as it is.
  if (await answers(files.socket)) return tunnelledUri(files.socket)
  const commands = tunnelCommands(plan, files)
  const ssh = (args: string[], timeoutMs: number) => runProgram('ssh', args, {env, timeoutMs})
  const master = await ssh(commands.check, 10_000).then(
    () => true,
    () => false,
  )
  if (!master) await ssh(commands.open, 60_000)
  await ssh(commands.forward, 15_000)
  return (await answers(files.socket)) ? tunnelledUri(files.socket) : undefined
}
