/** How to reach a machine over SSH; rendered both as ssh argv and as an ssh_config block. */
export interface SshTarget {
  host: string
  port: number
  user: string
  identityFile: string
  knownHostsFile: string
  /** Names the guest's host key in known_hosts independent of the forwarded port. */
  hostKeyAlias: string
  /** accept-new on the very first connection, yes ever after. */
  strictHostKeyChecking: 'accept-new' | 'yes'
  forwardAgent?: boolean
}

/** ssh expands %-tokens in file names: a literal % is written %%. */
const literalPath = (file: string): string => file.replaceAll('%', '%%')

function options(target: SshTarget): Array<[string, string]> {
  return [
    ['HostName', target.host],
    ['Port', String(target.port)],
    ['User', target.user],
    ['IdentityFile', literalPath(target.identityFile)],
    ['IdentitiesOnly', 'yes'],
    ['UserKnownHostsFile', literalPath(target.knownHostsFile)],
    ['HostKeyAlias', target.hostKeyAlias],
    ['StrictHostKeyChecking', target.strictHostKeyChecking],
    ['PasswordAuthentication', 'no'],
    ['LogLevel', 'ERROR'],
    ['ForwardAgent', target.forwardAgent === true ? 'yes' : 'no'],
  ]
}

function quote(value: string): string {
  return /[\s"]/.test(value) ? `"${value.replaceAll('"', '\\"')}"` : value
}

/** ssh arguments up to (not including) the command: `ssh ARGS host [command]`. */
export function sshArgs(target: SshTarget, extra: {batch?: boolean; connectTimeout?: number; tty?: boolean} = {}): string[] {
  const args: string[] = []
  for (const [key, value] of options(target)) {
    if (key === 'HostName') continue
    // ssh parses -o like a config line: a path with spaces must be quoted there too.
    args.push('-o', `${key}=${quote(value)}`)
  }
  if (extra.batch === true) args.push('-o', 'BatchMode=yes')
  if (extra.connectTimeout !== undefined) args.push('-o', `ConnectTimeout=${extra.connectTimeout}`)
  if (extra.tty === true) args.push('-t')
  args.push(target.host)
  return args
}

/** An OpenSSH Host block, for `ssh -F` and editors' remote-SSH extensions. */
export function renderSshConfig(alias: string, target: SshTarget): string {
  const lines = [`Host ${alias}`]
  for (const [key, value] of options(target)) lines.push(`  ${key} ${quote(value)}`)
  return `${lines.join('\n')}\n`
}
