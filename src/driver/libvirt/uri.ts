import type {SshJump} from '../driver.js'

/** The libvirt URI a machine gets when its Vmfile names none (as virsh itself defaults). */
export const DEFAULT_LIBVIRT_URI = 'qemu:///system'

/**
 * The URI a new machine is created on: the Vmfile's, else LIBVIRT_DEFAULT_URI (as virsh honours
 * it), else qemu:///system. The machine keeps it from then on (its placement file and record).
 */
export function libvirtUri(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (configured !== undefined && configured !== '') return configured
  const fromEnv = env.LIBVIRT_DEFAULT_URI
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_LIBVIRT_URI
}

/** What vm needs to know of a libvirt URI. */
export interface LibvirtHost {
  uri: string
  /** The daemon runs on this host (qemu:///..., qemu+unix://): its files are this host's files. */
  local: boolean
  /** How messages name the host: the remote host name, or "this host" for a local URI. */
  label: string
  /** For a remote URI: the host guests are reached through over SSH (ProxyJump). */
  jump: SshJump | undefined
}

/**
 * Reads a libvirt URI (driver[+transport]://[user@][host][:port]/path[?query]). Local: no host
 * part, or the unix transport. Remote (ssh, libssh, libssh2, tcp, tls): the guests' addresses
 * are on the remote host's networks, so SSH goes through that host; for ssh transports with its
 * user and port, for the others with the local ssh defaults.
 */
export function parseLibvirtUri(uri: string): LibvirtHost {
  const match = /^([A-Za-z][A-Za-z0-9.-]*?)(?:\+([A-Za-z0-9]+))?:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(uri)
  if (match === null) throw new Error(`"${uri}" is not a libvirt URI such as qemu:///system or qemu+ssh://user@host/system`)
  const transport = match[2]?.toLowerCase()
  const authority = match[3] ?? ''
  if (authority === '' || transport === 'unix') return {uri, local: true, label: 'this host', jump: undefined}
  const at = authority.lastIndexOf('@')
  const user = at >= 0 ? decodeURIComponent(authority.slice(0, at)) : undefined
  const hostPort = at >= 0 ? authority.slice(at + 1) : authority
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(hostPort)
  const plain = /^([^:]+)(?::(\d+))?$/.exec(hostPort)
  const host = bracketed?.[1] ?? plain?.[1]
  if (host === undefined || host === '') throw new Error(`"${uri}" names no usable host ("${authority}")`)
  const portText = bracketed?.[2] ?? plain?.[2]
  const sshTransport = transport === 'ssh' || transport === 'libssh' || transport === 'libssh2'
  const port = portText === undefined || !sshTransport ? undefined : Number(portText)
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw new Error(`"${uri}" has an invalid port ${portText}`)
  const jump: SshJump = {host, ...(port === undefined ? {} : {port}), ...(user === undefined || !sshTransport ? {} : {user})}
  return {uri, local: false, label: host, jump}
}

/** The query parameters of a libvirt URI, names and values decoded (libvirt's own reading). */
function queryParameters(uri: string): Map<string, string> {
  const query = /\?([^#]*)/.exec(uri)?.[1] ?? ''
  const params = new Map<string, string>()
  for (const part of query.split('&')) {
    if (part === '') continue
    const equals = part.indexOf('=')
    const decode = (text: string): string => {
      try {
        return decodeURIComponent(text)
      } catch {
        return text
      }
    }
    params.set(decode(equals < 0 ? part : part.slice(0, equals)), decode(equals < 0 ? '' : part.slice(equals + 1)))
  }
  return params
}

/** Where libvirtd listens on a host for qemu:///system (the monolithic daemon, or virtproxyd for the modular ones). */
export const SYSTEM_SOCKET = '/var/run/libvirt/libvirt-sock'

/** What vm needs to reach a qemu+ssh:// host's libvirt socket through a shared OpenSSH connection. */
export interface SshTunnelPlan {
  /** The ssh destination (the host of the URI). */
  destination: string
  /** ssh options that log in as libvirt's ssh transport would: port, user, key, host key checking. */
  loginOptions: string[]
  /** The daemon's socket on that host. */
  remoteSocket: string
}

/** The URI parameters a tunnel understands (libvirt's ssh transport's own); any other keeps virsh on its own transport. */
const TUNNEL_PARAMETERS = new Set(['keyfile', 'no_tty', 'no_verify', 'socket'])

/**
 * How to reach the daemon of a qemu+ssh://[user@]host[:port]/system URI through one OpenSSH
 * connection that vm keeps open (ControlMaster) and a forwarded Unix socket: libvirt's ssh
 * transport would log in and start a helper on the host for every virsh command. Undefined
 * for every other URI (local ones, other transports and drivers, /session, a command=, proxy=
 * or other parameter of the user's): virsh then uses the URI as it is.
 */
export function sshTunnelPlan(uri: string): SshTunnelPlan | undefined {
  const match = /^qemu\+ssh:\/\/([^/?#]+)\/system\/?(?:\?([^#]*))?$/i.exec(uri)
  if (match === null) return undefined
  let host: LibvirtHost
  try {
    host = parseLibvirtUri(uri)
  } catch {
    return undefined
  }
  const params = queryParameters(uri)
  if (host.jump === undefined || [...params.keys()].some((key) => !TUNNEL_PARAMETERS.has(key))) return undefined
  const remoteSocket = params.get('socket') ?? SYSTEM_SOCKET
  const keyfile = params.get('keyfile')
  if (!remoteSocket.startsWith('/') || keyfile === '') return undefined
  const {host: destination, port, user} = host.jump
  if (destination.startsWith('-') || user?.startsWith('-') === true) return undefined
  const noVerify = params.get('no_verify')
  return {
    destination,
    loginOptions: [
      ...(port === undefined ? [] : ['-p', String(port)]),
      ...(user === undefined ? [] : ['-l', user]),
      ...(keyfile === undefined ? [] : ['-i', keyfile]),
      ...(noVerify !== undefined && noVerify !== '0' ? ['-o', 'StrictHostKeyChecking=no'] : []),
    ],
    remoteSocket,
  }
}
