import {createSocket} from 'node:dgram'
import {createServer} from 'node:net'
import path from 'node:path'

import {removeIfUnchanged} from '../state/atomic-file.js'
import {claimFile, handOver, holderOf, releaseFile} from '../state/file-lock.js'
import {ensurePrivateDir, ensureRuntimeDir} from '../state/private-dir.js'

/** The default range for SSH ports forwarded from 127.0.0.1 to guests, as Vagrant's. */
export const SSH_PORT_RANGE: readonly [number, number] = [2200, 2299]

/** VNC displays 0-99 on 127.0.0.1 (port 5900 + display). */
export const VNC_PORT_RANGE: readonly [number, number] = [5900, 5999]

/** A host port as QEMU binds it: SSH and VNC ports are TCP on 127.0.0.1. */
export interface HostPort {
  port: number
  protocol: 'tcp' | 'udp'
  hostIp: string
}

const LOOPBACK_TCP = {protocol: 'tcp', hostIp: '127.0.0.1'} as const

/** The name of the lease directory in the runtime directory. */
export const LEASES_SUBDIR = 'ports'

/**
 * The directory of host-port leases (`ports` in the runtime directory), made private to this
 * user first: the one place that says where leases live.
 */
export function leasesDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return ensureRuntimeDir(LEASES_SUBDIR, env)
}

/** Whether nothing listens on host:port right now (we can bind it). */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({port, host, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

export function udpPortIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    socket.once('error', () => resolve(false))
    socket.bind({port, address: host, exclusive: true}, () => socket.close(() => resolve(true)))
  })
}

function hostPortIsFree(target: HostPort): Promise<boolean> {
  const host = target.hostIp === '' ? '0.0.0.0' : target.hostIp
  return target.protocol === 'udp' ? udpPortIsFree(target.port, host) : portIsFree(target.port, host)
}

/** The lease file of a host port: one per protocol, address and port. */
export function leaseFile(leaseDir: string, target: HostPort): string {
  const address = (target.hostIp === '' ? '0.0.0.0' : target.hostIp).replace(/[^\w.-]/g, '_')
  return path.join(leaseDir, `${target.protocol}-${address}-${target.port}.lease`)
}

/**
 * Takes one host port for `owner` if no other live lease holds it and nothing is bound to it.
 * A lease is a lock file (src/state/file-lock.ts) in the private `leaseDir` naming the process
 * that holds the port and the machine that owns it: created exclusively, so two machines
 * starting at the same moment never both get it; a lease whose holder process is gone (or
 * whose PID now belongs to another process) is taken over. False when the port is not available.
 */
export async function leaseHostPort(leaseDir: string, owner: string, target: HostPort): Promise<boolean> {
  await ensurePrivateDir(leaseDir)
  const file = leaseFile(leaseDir, target)
  const claim = await claimFile(file, holderOf(process.pid, owner))
  if (!claim.claimed) return false
  if (await hostPortIsFree(target)) return true
  await removeIfUnchanged(file, claim.content)
  return false
}

/**
 * Takes a port in `range` that no other lease holds and nothing listens on (TCP on 127.0.0.1
 * unless `address` says otherwise), skipping the ports in `skip`.
 */
export async function leasePort(
  leaseDir: string,
  owner: string,
  range: readonly [number, number] = SSH_PORT_RANGE,
  skip: ReadonlySet<number> = new Set(),
  address: Omit<HostPort, 'port'> = LOOPBACK_TCP,
): Promise<number> {
  for (let port = range[0]; port <= range[1]; port++) {
    if (skip.has(port)) continue
    if (await leaseHostPort(leaseDir, owner, {...address, port})) return port
  }
  throw new Error(`no free port between ${range[0]} and ${range[1]} on ${address.hostIp || '0.0.0.0'}`)
}

/**
 * Hands a lease to the process that now holds the port (QEMU), so it lives as long as it: the
 * lease then names that process (with its start time, like any holder). Written atomically
 * without following links (a fresh temp file renamed over the name).
 */
export async function transferLease(
  leaseDir: string,
  port: number,
  owner: string,
  pid: number,
  address: Omit<HostPort, 'port'> = LOOPBACK_TCP,
): Promise<void> {
  await ensurePrivateDir(leaseDir)
  await handOver(leaseFile(leaseDir, {...address, port}), pid, owner)
}

/** Gives back the lease of `port` if `owner` owns it, whichever process holds it now. */
export async function releaseLease(
  leaseDir: string,
  port: number,
  owner: string,
  address: Omit<HostPort, 'port'> = LOOPBACK_TCP,
): Promise<void> {
  await ensurePrivateDir(leaseDir)
  await releaseFile(leaseFile(leaseDir, {...address, port}), (holder) => holder.owner === owner)
}
