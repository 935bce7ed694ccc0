import type {MachineConfig} from '../vmfile/types.js'

/**
 * A guest's host name: the Vmfile's `hostname`, else the machine's name made a valid one.
 * Every engine and box gets it the same way (cloud images through their seed's meta-data).
 */

const MAX_LABEL = 63
const MAX_NAME = 253

/**
 * A machine name made an RFC 1123 host name: lower case, each dot-separated label with every
 * character other than a-z, 0-9 and "-" turned into "-", without leading or trailing "-", at
 * most 63 characters; empty labels dropped, at most 253 characters in all. "vm" when nothing
 * is left.
 */
export function hostnameFromMachineName(name: string): string {
  const labels = name
    .toLowerCase()
    .split('.')
    .map((label) =>
      label
        .replaceAll(/[^a-z0-9-]/g, '-')
        .replaceAll(/^-+|-+$/g, '')
        .slice(0, MAX_LABEL)
        .replaceAll(/-+$/g, ''),
    )
    .filter((label) => label !== '')
  let hostname = ''
  for (const label of labels) {
    const next = hostname === '' ? label : `${hostname}.${label}`
    if (next.length > MAX_NAME) break
    hostname = next
  }
  return hostname === '' ? 'vm' : hostname
}

/** The host name a machine's guest gets. */
export function machineHostname(config: Pick<MachineConfig, 'hostname' | 'name'>): string {
  return config.hostname ?? hostnameFromMachineName(config.name)
}

/**
 * The shell script (run as root, busybox sh or any POSIX sh) that gives the guest its host
 * name now and at every later boot (/etc/hostname), and makes it resolve: one 127.0.1.1 line
 * in /etc/hosts names it (and its first label), as Debian's installer does. /etc/hosts is
 * written before the name changes, so sudo never meets a name it cannot resolve.
 */
export function hostnameScript(hostname: string): string {
  if (!/^[a-z0-9.-]+$/i.test(hostname)) throw new Error(`not a host name: ${JSON.stringify(hostname)}`)
  const short = hostname.split('.')[0]!
  const names = short === hostname ? hostname : `${hostname} ${short}`
  return [
    'set -e',
    `hosts_new=/etc/hosts.vm-new`,
    `{ grep -v '^127\\.0\\.1\\.1[[:space:]]' /etc/hosts 2>/dev/null || true; printf '127.0.1.1\\t%s\\n' '${names}'; } > "$hosts_new"`,
    // Written in place (cat, not mv): /etc/hosts may be a bind mount or a link kept by the image.
    'cat "$hosts_new" > /etc/hosts',
    'rm -f "$hosts_new"',
    `printf '%s\\n' '${hostname}' > /etc/hostname`,
    `hostname '${hostname}' 2>/dev/null || printf '%s' '${hostname}' > /proc/sys/kernel/hostname`,
    '',
  ].join('\n')
}
