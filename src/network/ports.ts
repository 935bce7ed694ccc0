import {createSocket} from 'node:dgram'
import {lstat, readFile, rm} from 'node:fs/promises'
import {createServer} from 'node:net'
import path from 'node:path'

import {createExclusive, writeFileAtomic} from '../state/atomic-file.js'
import {acquireFileLock} from '../state/file-lock.js'
import {ensurePrivateDir} from '../state/private-dir.js'
import {processStartTime} from '../state/process-check.js'

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

interface Lease {
  pid: number
  owner: string
}

/** Whether the lease holder still runs: a zombie (a QEMU not yet reaped) holds no port. */
function alive(pid: number): boolean {
  return processStartTime(pid) !== undefined
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

async function readLease(file: string): Promise<Lease | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Lease
  } catch {
    return undefined
  }
}

/**
 * Takes one host port for `owner` if no other live lease holds it and nothing is bound to it:
 * the lease file is created exclusively (O_EXCL|O_NOFOLLOW) in the private `leaseDir`, so two
 * machines starting at the same moment never both get it; a lease whose holder process is
 * gone is taken over. False when the port is not available.
 */
export async function leaseHostPort(leaseDir: string, owner: string, target: HostPort): Promise<boolean> {
  await ensurePrivateDir(leaseDir)
  const file = leaseFile(leaseDir, target)
  const existing = await readLease(file)
  if (existing?.owner === owner && existing.pid === process.pid) return false
  if (existing !== undefined && alive(existing.pid)) return false
  if (existing !== undefined || (await isLeftover(file))) await takeOver(leaseDir, file)
  if (!(await createExclusive(file, JSON.stringify({pid: process.pid, owner} satisfies Lease)))) return false
  if (await hostPortIsFree(target)) return true
  await rm(file, {force: true})
  return false
}

/** A lease file that is not a lease vm wrote and is older than any write in progress. */
async function isLeftover(file: string): Promise<boolean> {
  try {
    return Date.now() - (await lstat(file)).mtimeMs > 10_000
  } catch {
    return false
  }
}

/**
 * Removes a dead lease, under a lock so two processes that both found it dead cannot remove
 * each other's fresh lease: the one that comes second sees the new, live lease and keeps it.
 */
async function takeOver(leaseDir: string, file: string): Promise<void> {
  const unlock = await acquireFileLock(path.join(leaseDir, '.takeover.lock'))
  try {
    const lease = await readLease(file)
    if (lease === undefined ? await isLeftover(file) : !alive(lease.pid)) await rm(file, {force: true})
  } finally {
    await unlock()
  }
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
 * Hands a lease to the process that now holds the port (QEMU), so it lives as long as it.
 * Written atomically without following links (a fresh temp file renamed over the name).
 */
export async function transferLease(
  leaseDir: string,
  port: number,
  owner: string,
  pid: number,
  address: Omit<HostPort, 'port'> = LOOPBACK_TCP,
): Promise<void> {
  await ensurePrivateDir(leaseDir)
  await writeFileAtomic(leaseFile(leaseDir, {...address, port}), JSON.stringify({pid, owner} satisfies Lease), {mode: 0o600})
}

export async function releaseLease(
  leaseDir: string,
  port: number,
  owner: string,
  address: Omit<HostPort, 'port'> = LOOPBACK_TCP,
): Promise<void> {
  await ensurePrivateDir(leaseDir)
  const file = leaseFile(leaseDir, {...address, port})
  const lease = await readLease(file)
  if (lease?.owner === owner) await rm(file, {force: true})
}
