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

function options(target: SshTarget): Array<[string, string]> {
  return [
    ['HostName', target.host],
    ['Port', String(target.port)],
    ['User', target.user],
    ['IdentityFile', target.identityFile],
    ['IdentitiesOnly', 'yes'],
    ['UserKnownHostsFile', target.knownHostsFile],
    ['HostKeyAlias', target.hostKeyAlias],
    ['StrictHostKeyChecking', target.strictHostKeyChecking],
    ['PasswordAuthentication', 'no'],
    ['LogLevel', 'ERROR'],
    ['ForwardAgent', target.forwardAgent === true ? 'yes' : 'no'],
  ]
}

/** ssh arguments up to (not including) the command: `ssh ARGS host [command]`. */
export function sshArgs(target: SshTarget, extra: {batch?: boolean; connectTimeout?: number; tty?: boolean} = {}): string[] {
  const args: string[] = []
  for (const [key, value] of options(target)) {
    if (key === 'HostName') continue
    args.push('-o', `${key}=${value}`)
  }
  if (extra.batch === true) args.push('-o', 'BatchMode=yes')
  if (extra.connectTimeout !== undefined) args.push('-o', `ConnectTimeout=${extra.connectTimeout}`)
  if (extra.tty === true) args.push('-t')
  args.push(target.host)
  return args
}

function quote(value: string): string {
  return /[\s"]/.test(value) ? `"${value.replaceAll('"', '\\"')}"` : value
}

/** An OpenSSH Host block, for `ssh -F` and editors' remote-SSH extensions. */
export function renderSshConfig(alias: string, target: SshTarget): string {
  const lines = [`Host ${alias}`]
  for (const [key, value] of options(target)) lines.push(`  ${key} ${quote(value)}`)
  return `${lines.join('\n')}\n`
}
