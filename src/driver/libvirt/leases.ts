/** A DHCP lease as `virsh net-dhcp-leases NETWORK` shows it. */
export interface Lease {
  /** As libvirt prints it ("2026-12-01 02:57:05", the libvirt host's local time): compared only with other expiries of that host. */
  expiry: string
  mac: string
  address: string
}

/**
 * Reads `virsh -q net-dhcp-leases NETWORK [--mac MAC]` (libvirt 9):
 *  2026-12-01 02:57:05   52:54:00:aa:bb:01   ipv4       192.168.150.43/24   tiny       01:52:54:00:aa:bb:01
 * IPv4 leases only, the address without its prefix.
 */
export function parseLeases(text: string): Lease[] {
  const leases: Lease[] = []
  for (const line of text.split('\n')) {
    const match = /^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+([0-9a-fA-F:]{17})\s+ipv4\s+([0-9.]+)(?:\/\d+)?(?:\s|$)/.exec(line)
    if (match !== null) leases.push({expiry: match[1]!, mac: match[2]!.toLowerCase(), address: match[3]!})
  }
  return leases
}

/**
 * The guest's address at this boot: the lease of its MAC whose expiry is later than the
 * latest one seen before the domain started (dnsmasq renews the expiry when the new boot asks;
 * right after a restart the previous boot's lease is still listed, with its old expiry).
 */
export function freshLease(leases: readonly Lease[], mac: string, expiryBeforeStart: string | undefined): Lease | undefined {
  const mine = leases.filter((lease) => lease.mac === mac.toLowerCase())
  const fresh = expiryBeforeStart === undefined ? mine : mine.filter((lease) => lease.expiry > expiryBeforeStart)
  return fresh.sort((a, b) => (a.expiry < b.expiry ? 1 : -1))[0]
}

/** The latest expiry among a MAC's leases (undefined: none). */
export function latestExpiry(leases: readonly Lease[], mac: string): string | undefined {
  return leases
    .filter((lease) => lease.mac === mac.toLowerCase())
    .map((lease) => lease.expiry)
    .sort()
    .at(-1)
}
