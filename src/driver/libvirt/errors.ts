import {ExternalError, UserError, type VmError} from '../../errors/errors.js'

/** What went wrong talking to a libvirt host, read from what virsh said. */
export type LibvirtFailure =
  'unreachable' | 'permission-denied' | 'pool-missing' | 'network-failed' | 'domain-missing' | 'volume-missing' | 'volume-exists' | 'other'

/** virsh's own "error: ..." lines, without the prefix and without empty lines. */
export function virshErrorLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => line.replace(/^error:\s*/, '').trim())
    .filter((line) => line !== '')
}

/** Classifies virsh's stderr (libvirt 9's wording, as observed). */
export function classifyVirshError(stderr: string): LibvirtFailure {
  if (/Permission denied|authentication failed|access denied|Unable to get system bus connection/i.test(stderr))
    return /failed to connect to the hypervisor/i.test(stderr) ? 'permission-denied' : classifyRest(stderr)
  if (
    /failed to connect to the hypervisor|Cannot recv data|Connection refused|No route to host|Could not resolve hostname|End of file while reading data/i.test(
      stderr,
    )
  )
    return 'unreachable'
  return classifyRest(stderr)
}

function classifyRest(stderr: string): LibvirtFailure {
  if (/Storage pool not found|failed to get pool/i.test(stderr)) return 'pool-missing'
  if (/Failed to start network|Network not found|failed to get network|Network is already in use/i.test(stderr)) return 'network-failed'
  if (/Domain not found|failed to get domain/i.test(stderr)) return 'domain-missing'
  if (/Storage volume not found|failed to get vol/i.test(stderr)) return 'volume-missing'
  if (/storage volume '[^']*' exists already|already in use/i.test(stderr)) return 'volume-exists'
  return 'other'
}

/**
 * The error a failed virsh call becomes: it names the host and carries what libvirt said; the
 * hint says what to do for the failures a user can fix (the host, the socket's permissions,
 * the pool, the network).
 */
export function libvirtError(host: string, uri: string, doing: string, args: readonly string[], stderr: string, pool?: string): VmError {
  const said = virshErrorLines(stderr)
  const last = said.at(-1) ?? 'no message'
  const where = host === 'this host' ? `the libvirt daemon on this host (${uri})` : `libvirt host ${host} (${uri})`
  switch (classifyVirshError(stderr)) {
    case 'unreachable':
      return new UserError(`Cannot reach ${where} to ${doing}: ${last}`, {
        code: 'LIBVIRT_UNREACHABLE',
        details: said,
        hint: 'Check that libvirtd runs there and that the libvirt.uri in the Vmfile (or LIBVIRT_DEFAULT_URI) is right; for qemu+ssh:// URIs, that "ssh" to the host works without a password.',
      })
    case 'permission-denied':
      return new UserError(`Permission denied by ${where} to ${doing}: ${last}`, {
        code: 'LIBVIRT_PERMISSION',
        details: said,
        hint: "Use an account that may open libvirt's socket (root, or a member of the group libvirtd.conf gives unix_sock_group, often libvirt), or a qemu:///session URI.",
      })
    case 'pool-missing':
      return new UserError(`Storage pool ${pool === undefined ? '' : `"${pool}" `}does not exist on ${where}: ${last}`, {
        code: 'LIBVIRT_POOL_MISSING',
        details: said,
        hint: `Create it there (e.g. virsh -c ${uri} pool-define-as ${pool ?? 'default'} dir --target /var/lib/libvirt/images && virsh -c ${uri} pool-start ${pool ?? 'default'}), or name an existing pool in the Vmfile's libvirt.pool.`,
      })
    case 'network-failed':
      return new UserError(`The libvirt network could not be started on ${where}: ${last}`, {
        code: 'LIBVIRT_NETWORK',
        details: said,
        hint: 'Another network there may use the same bridge or subnet, or the host lacks what NAT needs (iptables, dnsmasq). Name another network in the Vmfile\'s libvirt.network, or fix it there ("virsh net-start NAME" shows the same error).',
      })
    default:
      return new ExternalError(
        `libvirt failed to ${doing} on ${host === 'this host' ? 'this host' : host}: ${last}`,
        'virsh',
        args,
        stderr,
        {
          code: 'LIBVIRT_FAILED',
        },
      )
  }
}
