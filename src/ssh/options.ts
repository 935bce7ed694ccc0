import {UserError} from '../errors/errors.js'
import {escapeControl, hasControl} from '../cli/terminal-text.js'

/**
 * A host ssh connects to first and tunnels through to the machine (ProxyJump), e.g. the host
 * a remote engine runs its guests on. Its own key and host key come from the user's ssh setup.
 */
export interface JumpHost {
  host: string
  /** The jump host's SSH port (default: what the user's ssh config says, else 22). */
  port?: number | undefined
  /** The login on the jump host (default: what the user's ssh config says, else the local user). */
  user?: string | undefined
  /**
   * The control socket of vm's own shared connection to the jump host (e.g. the libvirt host's,
   * see driver/libvirt/tunnel.ts): while its master is up, ssh goes through it instead of
   * logging in to the jump host again; when it is not, ssh logs in as with ProxyJump.
   */
  controlPath?: string | undefined
}

/** How to reach a machine over SSH; rendered both as ssh argv and as an ssh_config block. */
export interface SshTarget {
  /** The guest's address as ssh reaches it: from this host, or from the jump host when there is one. */
  host: string
  port: number
  /** Reach `host` through this host (ProxyJump); none: connect directly. */
  jump?: JumpHost | undefined
  user: string
  /** The private keys ssh offers, in order (one IdentityFile each); never empty. */
  identityFiles: readonly string[]
  knownHostsFile: string
  /** Names the guest's host key in known_hosts independent of the forwarded port. */
  hostKeyAlias: string
  /** accept-new on the very first connection, yes ever after. */
  strictHostKeyChecking: 'accept-new' | 'yes'
  forwardAgent?: boolean
  /** The machine this target logs into, when it is one of vm's: names its shared connection (see master.ts). */
  machineId?: string | undefined
}

/**
 * How ssh reads one value. Every value is written on one line of ssh_config (or one -o), so
 * a value must never carry a line break or other control character: that is what lets a
 * value add a directive such as ProxyCommand. Names (user, host, alias) must match a strict
 * pattern; paths may hold anything printable and are quoted, with `\` and `"` escaped as
 * OpenSSH's argument splitter reads them and `%` doubled where ssh expands %-tokens.
 */
type ValueKind = 'name' | 'host' | 'path' | 'word'

/** Login names as useradd allows them (a trailing $ for machine accounts aside). */
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/
/** A host name, IPv4 address or bracketless IPv6 address; never starting with "-" (an option). */
const HOST = /^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$/
/** A Host alias: one pattern-free word, so it cannot match other hosts or add patterns. */
const ALIAS = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/

function refuse(what: string, value: string, why: string): never {
  throw new UserError(`Cannot write the SSH ${what} "${escapeControl(value)}": ${why}`, {
    code: 'SSH_VALUE_UNSAFE',
    hint: 'ssh would read it as something else (another option, a token, a second value). Use a plain value: a box that declares such an ssh_user, or a project path with such characters, cannot be used over SSH.',
  })
}

/** The text ssh reads back as exactly `value`, for the option `key`. */
function encode(key: string, value: string, kind: ValueKind): string {
  if (hasControl(value)) refuse(key, value, 'it contains a control character (a newline would start a new option)')
  switch (kind) {
    case 'name':
      if (!USER.test(value)) refuse(key, value, 'a user name may contain only letters, digits, ".", "_" and "-"')
      return value
    case 'host':
      if (!HOST.test(value)) refuse(key, value, 'a host may contain only letters, digits, ".", ":" and "-"')
      return value.replaceAll('%', '%%')
    case 'word':
      return value
    case 'path': {
      if (!value.startsWith('/')) refuse(key, value, 'it must be an absolute path')
      // ${NAME} is expanded from the environment in file options and has no escape.
      if (value.includes('${')) refuse(key, value, 'ssh would expand "${" from the environment')
      const tokens = value.replaceAll('%', '%%')
      return /[\s"'\\#]/.test(tokens) ? `"${tokens.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : tokens
    }
  }
}

function checkPort(key: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) refuse(key, String(port), 'it is not a TCP port')
  return String(port)
}

/**
 * The ProxyJump value `[user@]host[:port]`, an IPv6 address in brackets. ssh turns it into the
 * shell command line `ssh -l USER -p PORT -W ... HOST`, so user and host must be strict names
 * (no shell syntax, no "," that starts a second jump, no "#" that starts a comment); and the
 * value "none" alone means no jump at all.
 */
export function renderProxyJump(jump: JumpHost): string {
  const user = jump.user === undefined ? '' : `${encode('ProxyJump user', jump.user, 'name')}@`
  const host = encode('ProxyJump host', jump.host, 'host')
  const port = jump.port === undefined ? '' : `:${checkPort('ProxyJump port', jump.port)}`
  const value = `${user}${host.includes(':') ? `[${host}]` : host}${port}`
  if (value.toLowerCase() === 'none')
    refuse('ProxyJump host', jump.host, 'ssh reads a jump host "none" as no jump host (give its port or user too)')
  return value
}

/** Control socket paths a ProxyCommand may name as they are (no quoting, no %-tokens). */
const PLAIN_PATH = /^\/[A-Za-z0-9_./+-]+$/

/**
 * How ssh reaches the guest through the jump host: ProxyJump, or, when vm keeps a shared
 * connection to that host, a ProxyCommand that opens the guest's channel in it (`ssh -W` over
 * the master; ssh logs in itself when no master answers there). The user, host and port are
 * checked as for ProxyJump; a control path with other characters than plain ones is not used.
 */
export function renderJump(jump: JumpHost): [string, string] {
  const value = renderProxyJump(jump)
  if (jump.controlPath === undefined || !PLAIN_PATH.test(jump.controlPath)) return ['ProxyJump', value]
  const command = [
    'ssh',
    '-o',
    'ControlMaster=no',
    '-o',
    `ControlPath=${jump.controlPath}`,
    ...(jump.user === undefined ? [] : ['-l', jump.user]),
    ...(jump.port === undefined ? [] : ['-p', String(jump.port)]),
    '-W',
    '"[%h]:%p"',
    '--',
    encode('ProxyJump host', jump.host, 'host'),
  ]
  return ['ProxyCommand', command.join(' ')]
}

function identityFiles(target: SshTarget): readonly string[] {
  if (target.identityFiles.length === 0) refuse('IdentityFile', '', 'no key to log in with')
  return target.identityFiles
}

function options(target: SshTarget): Array<[string, string]> {
  return [
    ['HostName', encode('HostName', target.host, 'host')],
    ['Port', checkPort('Port', target.port)],
    ...(target.jump === undefined ? [] : [renderJump(target.jump)]),
    ['User', encode('User', target.user, 'name')],
    ...identityFiles(target).map((file): [string, string] => ['IdentityFile', encode('IdentityFile', file, 'path')]),
    ['IdentitiesOnly', 'yes'],
    ['UserKnownHostsFile', encode('UserKnownHostsFile', target.knownHostsFile, 'path')],
    ['HostKeyAlias', encode('HostKeyAlias', target.hostKeyAlias, 'host')],
    ['StrictHostKeyChecking', encode('StrictHostKeyChecking', target.strictHostKeyChecking, 'word')],
    ['PasswordAuthentication', 'no'],
    ['LogLevel', 'ERROR'],
    ['ForwardAgent', target.forwardAgent === true ? 'yes' : 'no'],
  ]
}

/** Seconds an idle shared connection (ControlMaster) stays for the next command. */
export const MASTER_PERSIST_SECONDS = 60

/**
 * Options for connection sharing: 'none' turns it off (also against a ControlMaster in the
 * user's own ssh config), a path shares the connection whose socket is there, opening it when
 * there is none (or only a stale one). The keep-alive makes a master whose guest went away
 * (rebooted, frozen) exit within ~30 s instead of holding on to a dead connection.
 */
export function controlOptions(controlPath: string): string[] {
  if (controlPath === 'none') return ['-o', 'ControlPath=none']
  return [
    ['ControlMaster', 'auto'],
    ['ControlPath', encode('ControlPath', controlPath, 'path')],
    ['ControlPersist', String(MASTER_PERSIST_SECONDS)],
    ['ServerAliveInterval', '10'],
    ['ServerAliveCountMax', '3'],
  ].flatMap(([key, value]) => ['-o', `${key}=${value}`])
}

/** The arguments of `ssh ARGS -O exit x` that ask the master on `controlPath` to exit. */
export function masterExitArgs(controlPath: string): string[] {
  return ['-o', 'LogLevel=QUIET', '-o', `ControlPath=${encode('ControlPath', controlPath, 'path')}`, '-O', 'exit', 'vm-master']
}

export interface SshArgsExtra {
  batch?: boolean
  connectTimeout?: number
  /** -t: a terminal for the session; 'force': -tt, one even when stdin is none. */
  tty?: boolean | 'force'
  /** Connection sharing (see controlOptions); unset: as the user's ssh config says. */
  controlPath?: string
}

/** ssh arguments up to (not including) the command: `ssh ARGS host [command]`. */
export function sshArgs(target: SshTarget, extra: SshArgsExtra = {}): string[] {
  const args: string[] = []
  for (const [key, value] of options(target)) {
    if (key === 'HostName') continue
    // ssh parses -o like a config line: the same encoding applies.
    args.push('-o', `${key}=${value}`)
  }
  if (extra.batch === true) args.push('-o', 'BatchMode=yes')
  if (extra.connectTimeout !== undefined) args.push('-o', `ConnectTimeout=${extra.connectTimeout}`)
  if (extra.controlPath !== undefined) args.push(...controlOptions(extra.controlPath))
  if (extra.tty === true) args.push('-t')
  if (extra.tty === 'force') args.push('-tt')
  args.push(target.host)
  return args
}

/** Throws unless `alias` can be written after `Host` as one literal name (no pattern, no space). */
export function checkHostAlias(alias: string): void {
  if (hasControl(alias) || !ALIAS.test(alias)) {
    refuse('Host alias', alias, 'an alias may contain only letters, digits, ".", "_" and "-" (no spaces or patterns)')
  }
}

/**
 * An OpenSSH Host block, for `ssh -F` and editors' remote-SSH extensions. Throws a UserError
 * rather than write a value ssh would read differently (see encode).
 */
export function renderSshConfig(alias: string, target: SshTarget): string {
  checkHostAlias(alias)
  const lines = [`Host ${alias}`]
  for (const [key, value] of options(target)) lines.push(`  ${key} ${value}`)
  return `${lines.join('\n')}\n`
}
