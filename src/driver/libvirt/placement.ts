import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../../errors/errors.js'
import {writeFileAtomic} from '../../state/atomic-file.js'

/** The files the libvirt driver keeps in a machine's directory, by name, in one place. */
export const LibvirtFile = {
  /** Where the machine lives: its host, pool, domain and volumes (written when its volumes are made). */
  placement: 'libvirt.json',
  /** The serial console's log, when the libvirt host can write this host's files (a local URI). */
  serialLog: 'serial.log',
} as const

/** Where a machine of the libvirt engine lives; fixed when it is created. */
export interface Placement {
  uri: string
  pool: string
  /** The NAT network of its first NIC. */
  network: string
  domain: string
  /** The machine's own volumes (disk0, disk1 ...), backed by the box volumes. */
  volumes: string[]
  /** Kernel and initrd as the libvirt host sees them (box store files, or uploaded volumes). */
  kernel?: string | undefined
  initrd?: string | undefined
  /** A remote host's domain: the volume its serial console logs into (console.ts). */
  consoleLog?: HostFile | undefined
  /** A cloud-image machine on a remote host: its NoCloud seed, uploaded as a volume (console.ts). */
  seed?: HostFile | undefined
}

/** A volume of the machine in its pool, and its path as the libvirt host sees it. */
export interface HostFile {
  volume: string
  path: string
}

export function placementFile(dir: string): string {
  return path.join(dir, LibvirtFile.placement)
}

export async function writePlacement(dir: string, placement: Placement): Promise<void> {
  await writeFileAtomic(placementFile(dir), `${JSON.stringify(placement, null, 2)}\n`, {mode: 0o600})
}

/** The machine's placement; undefined when it has none (never created, or destroyed). */
export async function readPlacement(dir: string): Promise<Placement | undefined> {
  let text: string
  try {
    text = await readFile(placementFile(dir), 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const data = JSON.parse(text) as Placement
    if (typeof data.uri !== 'string' || typeof data.domain !== 'string' || !Array.isArray(data.volumes)) throw new Error('fields missing')
    return data
  } catch (error) {
    throw new UserError(`${placementFile(dir)} is unreadable: ${(error as Error).message}`, {
      code: 'LIBVIRT_PLACEMENT_UNREADABLE',
      hint: 'Restore it from a backup; it names the libvirt host, pool, domain and volumes of the machine.',
    })
  }
}

export async function removePlacement(dir: string): Promise<void> {
  await rm(placementFile(dir), {force: true})
}

/** The domain name of a machine: its name (for people reading virsh list) and its id (unique on any host). */
export function domainName(name: string, id: string): string {
  return `vm-${name.slice(0, 40)}-${id}`
}
