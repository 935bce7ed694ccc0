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
 * The guest's address at this boot: the lease of its MAC with the latest expiry, preferring
 * one whose expiry is later than the latest seen before the domain started (a lease this boot
 * took). Right after a restart the previous boot's lease is still listed, and libvirt's dnsmasq
 * does not report renewals (no script-on-renewal), so a restarted guest may keep showing it:
 * dnsmasq gives a MAC the address of its unexpired lease again, so that address is the guest's,
 * and the host key pinned for the machine refuses any other machine answering there.
 */
export function freshLease(leases: readonly Lease[], mac: string, expiryBeforeStart: string | undefined): Lease | undefined {
  const mine = leases.filter((lease) => lease.mac === mac.toLowerCase()).sort((a, b) => (a.expiry < b.expiry ? 1 : -1))
  const fresh = expiryBeforeStart === undefined ? undefined : mine.find((lease) => lease.expiry > expiryBeforeStart)
  return fresh ?? mine[0]
}

/** The latest expiry among a MAC's leases (undefined: none). */
export function latestExpiry(leases: readonly Lease[], mac: string): string | undefined {
  return leases
    .filter((lease) => lease.mac === mac.toLowerCase())
    .map((lease) => lease.expiry)
    .sort()
    .at(-1)
}

/**
 * How vm waits for a booting guest's lease: the leases are read every `intervalMs` (the guest
 * answers on SSH soon after its lease, so a late look costs the whole boot that much), whether
 * the domain still runs only every `stateEveryMs` (a domain that stopped fails the wait that
 * much later). Each read is one virsh call over the host's shared connection.
 */
export const LEASE_POLL = {intervalMs: 400, stateEveryMs: 2000} as const
