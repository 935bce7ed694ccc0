import {UserError} from '../errors/errors.js'
import type {ForwardedPort} from '../vmfile/types.js'
import {leaseHostPort, leasePort, releaseLease, type HostPort} from './ports.js'

/** A forwarded port as QEMU will set it up. */
export interface ResolvedForward {
  guest: number
  host: number
  hostIp: string
  protocol: 'tcp' | 'udp'
  /** The host port the Vmfile asked for, when auto_correct replaced it. */
  requested?: number
}

/** Range auto_correct picks replacement host ports from. */
export const AUTO_CORRECT_RANGE: readonly [number, number] = [2200, 2299]

const label = (target: HostPort): string => `${target.hostIp || '0.0.0.0'}:${target.port}/${target.protocol}`

function portInUse(machine: string, port: ForwardedPort, when: string): UserError {
  return new UserError(
    `Host port ${label({port: port.host, protocol: port.protocol, hostIp: port.hostIp})} (forwarded to guest port ${port.guest} of machine ${machine}) ${when}`,
    {
      code: 'PORT_IN_USE',
      hint: 'Choose another host port in the Vmfile, stop what uses it, or set "auto_correct: true" on that forwarded port.',
    },
  )
}

/** A replacement host port for a forward whose port is taken (auto_correct), leased like SSH ports. */
async function correct(leaseDir: string, owner: string, port: ForwardedPort, skip: ReadonlySet<number>): Promise<number> {
  return leasePort(leaseDir, owner, AUTO_CORRECT_RANGE, skip, {protocol: port.protocol, hostIp: port.hostIp})
}

const key = (target: HostPort): string => `${target.protocol} ${target.hostIp} ${target.port}`

/**
 * Reserves every forwarded host port before QEMU starts: each is leased (a lease file per
 * protocol, address and port, like the SSH ports) so two machines starting at once never
 * race for one, and checked free. A taken port is an error naming the port and the machine,
 * or, with auto_correct, is replaced by a free leased port (and reported). The leases belong
 * to this process until `transferLease` hands them to QEMU; on failure, release them.
 */
export async function resolveForwards(
  machine: string,
  ports: readonly ForwardedPort[],
  leaseDir: string,
  owner: string,
  onCorrected: (text: string) => void,
): Promise<ResolvedForward[]> {
  const resolved: ResolvedForward[] = []
  const used = new Set<string>()
  try {
    for (const port of ports) {
      const target = {port: port.host, protocol: port.protocol, hostIp: port.hostIp}
      const free = !used.has(key(target)) && (await leaseHostPort(leaseDir, owner, target))
      if (free) {
        resolved.push({guest: port.guest, host: port.host, hostIp: port.hostIp, protocol: port.protocol})
        used.add(key(target))
        continue
      }
      if (!port.autoCorrect) throw portInUse(machine, port, 'is already in use')
      const skip = new Set(
        [...used].flatMap((entry) => (entry.startsWith(`${port.protocol} ${port.hostIp} `) ? [Number(entry.split(' ')[2])] : [])),
      )
      const host = await correct(leaseDir, owner, port, skip)
      used.add(key({...target, port: host}))
      onCorrected(`host port ${port.host} for guest port ${port.guest} is in use; forwarding ${port.hostIp}:${host} instead (auto_correct)`)
      resolved.push({guest: port.guest, host, hostIp: port.hostIp, protocol: port.protocol, requested: port.host})
    }
  } catch (error) {
    await releaseForwards(leaseDir, owner, resolved)
    throw error
  }
  return resolved
}

/** Gives back the leases of forwarded ports this process holds (QEMU did not start). */
export async function releaseForwards(leaseDir: string, owner: string, forwards: readonly ResolvedForward[]): Promise<void> {
  for (const forward of forwards)
    await releaseLease(leaseDir, forward.host, owner, {protocol: forward.protocol, hostIp: forward.hostIp}).catch(() => undefined)
}

/**
 * The host port QEMU could not forward, from its stderr, e.g.
 * `Could not set up host forwarding rule 'tcp:127.0.0.1:2222-:22'` (QEMU 7.2; the address is
 * empty for all addresses). Undefined when the failure was something else.
 */
export function failedHostForward(stderr: string): HostPort | undefined {
  const match = /Could not set up host forwarding rule '(tcp|udp)?:([^']*?):(\d+)-[^']*'/i.exec(stderr)
  if (match === null) return undefined
  return {protocol: match[1] === 'udp' ? 'udp' : 'tcp', hostIp: match[2] ?? '', port: Number(match[3])}
}

/** Whether the rule QEMU failed on is this host port (an empty address means 0.0.0.0). */
export function sameHostPort(a: HostPort, b: HostPort): boolean {
  const address = (value: string) => (value === '' ? '0.0.0.0' : value)
  return a.port === b.port && a.protocol === b.protocol && address(a.hostIp) === address(b.hostIp)
}

/**
 * A forwarded port was taken between its lease and QEMU's start (by a program that does not
 * take leases). With auto_correct, another leased port replaces it; otherwise the error names
 * the port, its protocol and the machine. Returns the new forwards.
 */
export async function replaceClashedForward(
  machine: string,
  failed: HostPort,
  forwards: readonly ResolvedForward[],
  ports: readonly ForwardedPort[],
  leaseDir: string,
  owner: string,
  onCorrected: (text: string) => void,
): Promise<ResolvedForward[] | undefined> {
  const index = forwards.findIndex((forward) =>
    sameHostPort({port: forward.host, protocol: forward.protocol, hostIp: forward.hostIp}, failed),
  )
  const forward = forwards[index]
  if (forward === undefined) return undefined
  const asked = ports.find(
    (port) =>
      port.guest === forward.guest &&
      port.protocol === forward.protocol &&
      port.hostIp === forward.hostIp &&
      port.host === (forward.requested ?? forward.host),
  )
  await releaseLease(leaseDir, forward.host, owner, {protocol: forward.protocol, hostIp: forward.hostIp})
  const configured: ForwardedPort = asked ?? {...forward, host: forward.requested ?? forward.host, autoCorrect: false}
  if (!configured.autoCorrect) {
    throw portInUse(machine, {...configured, host: forward.host}, 'was taken by another program while the machine was starting')
  }
  const skip = new Set(
    forwards.filter((other) => other.protocol === forward.protocol && other.hostIp === forward.hostIp).map((other) => other.host),
  )
  const host = await correct(leaseDir, owner, configured, skip)
  onCorrected(
    `host port ${forward.host} for guest port ${forward.guest} was taken meanwhile; forwarding ${forward.hostIp}:${host} instead (auto_correct)`,
  )
  const replaced = [...forwards]
  replaced[index] = {...forward, host, requested: configured.host}
  return replaced
}
