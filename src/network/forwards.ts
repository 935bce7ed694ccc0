import {createSocket} from 'node:dgram'

import {UserError} from '../cli/errors.js'
import type {ForwardedPort} from '../vmfile/types.js'
import {leasePort, portIsFree} from './ports.js'

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

export function udpPortIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    socket.once('error', () => resolve(false))
    socket.bind({port, address: host, exclusive: true}, () => socket.close(() => resolve(true)))
  })
}

/**
 * Checks every forwarded host port before QEMU starts. A taken port is an error naming the
 * port and the machine, or, with auto_correct, is replaced by a free port (and reported).
 */
export async function resolveForwards(
  machine: string,
  ports: readonly ForwardedPort[],
  leaseDir: string,
  owner: string,
  onCorrected: (text: string) => void,
): Promise<ResolvedForward[]> {
  const resolved: ResolvedForward[] = []
  const used = new Set<number>()
  for (const port of ports) {
    const free =
      !used.has(port.host) &&
      (port.protocol === 'udp' ? await udpPortIsFree(port.host, port.hostIp) : await portIsFree(port.host, port.hostIp))
    if (free) {
      resolved.push({guest: port.guest, host: port.host, hostIp: port.hostIp, protocol: port.protocol})
      used.add(port.host)
      continue
    }
    if (!port.autoCorrect) {
      throw new UserError(
        `Host port ${port.hostIp}:${port.host}/${port.protocol} (forwarded to guest port ${port.guest} of machine ${machine}) is already in use`,
        {
          code: 'PORT_IN_USE',
          hint: 'Choose another host port in the Vmfile, stop what uses it, or set "auto_correct: true" on that forwarded port.',
        },
      )
    }
    const host = await leasePort(leaseDir, owner, AUTO_CORRECT_RANGE, used)
    used.add(host)
    onCorrected(`host port ${port.host} for guest port ${port.guest} is in use; forwarding ${port.hostIp}:${host} instead (auto_correct)`)
    resolved.push({guest: port.guest, host, hostIp: port.hostIp, protocol: port.protocol, requested: port.host})
  }
  return resolved
}
