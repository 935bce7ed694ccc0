import {access as fileAccess, constants} from 'node:fs/promises'

import {runProgram} from '../../process/run.js'
import type {CreatedMachine, DriverMachine, EngineSnapshot, SnapshotOperations, StartFrom, Stopped, SuspendOperations} from '../driver.js'

/**
 * Snapshots and suspend of a libvirt domain, through virsh only (so they work the same on a
 * remote host). Snapshots are libvirt's internal ones: the qcow2 snapshots live in the
 * machine's own volume and go with it; libvirt keeps their metadata, which `undefine
 * --snapshots-metadata` drops. A running domain's snapshot holds its memory (QEMU's savevm,
 * the guest paused meanwhile); a shut-off domain's holds its disks only (libvirt runs
 * qemu-img). Suspend is libvirt's managed save: the state goes to a file on the domain's host
 * that libvirt owns, and a plain `virsh start` resumes from it.
 */

/** A machine's domain as these operations reach it; the engine makes it. */
export interface DomainHandle {
  /** The domain's name (unique on its host). */
  domain: string
  /** The libvirt host is this one (its disk files may be readable here). */
  local: boolean
  /** Runs `virsh ARGS` against the machine's host; resolves its stdout, rejects with an error naming the host and what libvirt said. */
  virsh(args: readonly string[], doing: string, timeoutMs?: number): Promise<string>
}

/** Finds a machine's domain (the engine knows where it lives). */
export type DomainAccess = (machine: DriverMachine) => Promise<DomainHandle>

/** How long a save or restore of memory may take (a large guest under TCG is slow to write). */
const STATE_TIMEOUT_MS = 600_000

/** A row of `virsh snapshot-list DOMAIN`: name, creation time, the domain's state then. */
export interface SnapshotRow {
  name: string
  createdAt: string
  /** running, paused, shutoff, disk-snapshot ... */
  state: string
}

const ROW = /^ (.+?)\s+(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)\s+(\S+)\s*$/

/**
 * The rows of `virsh snapshot-list DOMAIN` (a table: Name, Creation Time, State), oldest first.
 * The name is what precedes the time column, so names with spaces are read whole.
 */
export function parseSnapshotList(text: string): SnapshotRow[] {
  const rows: SnapshotRow[] = []
  for (const line of text.split('\n')) {
    const match = ROW.exec(line)
    if (match === null) continue
    const [, name, day, time, hours, minutes, state] = match
    rows.push({name: name!, createdAt: new Date(`${day}T${time}${hours}:${minutes}`).toISOString(), state: state!})
  }
  // Oldest first (virsh sorts by name), as the qemu engine lists them.
  return rows.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0))
}

/** Whether a snapshot taken in this domain state holds the guest's memory (it was taken while the guest ran). */
export function holdsMemory(state: string): boolean {
  return state === 'running' || state === 'paused' || state === 'pmsuspended'
}

/** `virsh dominfo DOMAIN`'s fields by their label ("State", "Managed save", "Max memory" ...). */
export function parseDomInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }
  return fields
}

/** Whether `virsh dominfo` says libvirt holds a managed save (vm suspend) of the domain. */
export function hasManagedSave(dominfo: string): boolean {
  return parseDomInfo(dominfo).get('Managed save') === 'yes'
}

/** The guest's memory in bytes from `virsh dominfo` ("Max memory: 524288 KiB"). */
export function memoryBytes(dominfo: string): number {
  const match = /^(\d+) KiB$/.exec(parseDomInfo(dominfo).get('Max memory') ?? '')
  return match === null ? 0 : Number(match[1]) * 1024
}

export interface BlockDevice {
  type: string
  device: string
  target: string
  source: string
}

/** `virsh domblklist DOMAIN --details`: type, device (disk, cdrom ...), target, source. */
export function parseBlockList(text: string): BlockDevice[] {
  return text
    .split('\n')
    .map((line) => /^\s*(\S+)\s+(\S+)\s+(\S+)\s+(.*?)\s*$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null && match[1] !== 'Type' && !/^-+$/.test(match[1]!))
    .map(([, type, device, target, source]) => ({type: type!, device: device!, target: target!, source: source!}))
}

/** `virsh domblkinfo DOMAIN --all`: each target's capacity (virtual size) in bytes. */
export function parseBlockCapacities(text: string): Map<string, number> {
  const sizes = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^\s*(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line)
    if (match !== null) sizes.set(match[1]!, Number(match[2]))
  }
  return sizes
}

/** The machine's own disks (not the cloud-init seed or other CD-ROMs), in their order. */
async function disksOf(handle: DomainHandle): Promise<BlockDevice[]> {
  const listed = parseBlockList(await handle.virsh(['domblklist', handle.domain, '--details'], `list the disks of domain ${handle.domain}`))
  return listed.filter((device) => device.device === 'disk')
}

interface ImageSnapshot {
  name: string
  'vm-state-size': number
}

/**
 * The exact size of each snapshot's memory and device state, read from the first disk's qcow2
 * header when that disk is a file on this host; undefined when it is not (a remote host).
 */
async function localStateSizes(handle: DomainHandle, disk: BlockDevice | undefined): Promise<Map<string, number> | undefined> {
  if (!handle.local || disk === undefined || disk.type !== 'file') return undefined
  const readable = await fileAccess(disk.source, constants.R_OK).then(
    () => true,
    () => false,
  )
  if (!readable) return undefined
  try {
    // -U: the disk of a running domain is locked by its QEMU; reading the header is safe.
    const {stdout} = await runProgram('qemu-img', ['info', '-U', '--output=json', disk.source], {timeoutMs: 60_000})
    const snapshots = (JSON.parse(stdout) as {snapshots?: ImageSnapshot[]}).snapshots ?? []
    return new Map(snapshots.map((snapshot) => [snapshot.name, snapshot['vm-state-size']]))
  } catch {
    return undefined
  }
}

export function libvirtSnapshots(access: DomainAccess): SnapshotOperations {
  return {
    async list(machine) {
      const handle = await access(machine)
      const rows = parseSnapshotList(await handle.virsh(['snapshot-list', handle.domain], `list the snapshots of domain ${handle.domain}`))
      if (!rows.some((row) => holdsMemory(row.state)))
        return rows.map((row) => ({name: row.name, memoryBytes: 0, createdAt: row.createdAt}))
      const sizes = await localStateSizes(handle, (await disksOf(handle))[0])
      // Where the disk cannot be read (a remote host), the guest's memory stands for the state's size (its upper bound).
      const fallback = sizes === undefined ? memoryBytes(await handle.virsh(['dominfo', handle.domain], `read domain ${handle.domain}`)) : 0
      return rows.map((row): EngineSnapshot => ({
        name: row.name,
        memoryBytes: holdsMemory(row.state) ? Math.max(1, sizes?.get(row.name) ?? fallback) : 0,
        createdAt: row.createdAt,
      }))
    },

    async save(machine, name) {
      // Internal either way: a running domain's with its memory (QEMU's savevm), a shut-off one's
      // of the disks only (libvirt runs qemu-img). Never --disk-only: that makes external
      // snapshots (overlay files), which libvirt 9.0 cannot revert to. --atomic: a failed
      // snapshot leaves nothing half-made.
      const handle = await access(machine)
      await handle.virsh(
        ['snapshot-create-as', handle.domain, '--name', name, '--atomic'],
        `take snapshot ${name} of domain ${handle.domain}`,
        STATE_TIMEOUT_MS,
      )
    },

    async restore(machine, name, running) {
      // A running domain continues from the snapshot's memory and runs on (--running); a shut-off
      // one gets the snapshot's disks and stays shut off.
      const handle = await access(machine)
      await handle.virsh(
        ['snapshot-revert', handle.domain, '--snapshotname', name, ...(running ? ['--running'] : [])],
        `restore snapshot ${name} of domain ${handle.domain}`,
        STATE_TIMEOUT_MS,
      )
    },

    async delete(machine, name) {
      const handle = await access(machine)
      await handle.virsh(['snapshot-delete', handle.domain, '--snapshotname', name], `delete snapshot ${name} of domain ${handle.domain}`)
    },

    async diskSizes(machine) {
      const handle = await access(machine)
      const disks = await disksOf(handle)
      const capacities = parseBlockCapacities(
        await handle.virsh(['domblkinfo', handle.domain, '--all'], `read the disk sizes of domain ${handle.domain}`),
      )
      return disks.map((disk) => capacities.get(disk.target) ?? 0)
    },
  }
}

/**
 * Suspend through libvirt's managed save. `release` gives back what the engine holds for the
 * machine while it runs, as its stop does (called once the domain is shut off).
 */
export function libvirtSuspension(access: DomainAccess, release: (machine: CreatedMachine) => Promise<Stopped>): SuspendOperations {
  return {
    async suspend(machine) {
      const handle = await access(machine)
      await handle.virsh(['managedsave', handle.domain], `save the state of domain ${handle.domain}`, STATE_TIMEOUT_MS)
      const {record} = await release(machine)
      return {method: 'quit', record}
    },

    async discard(machine) {
      // Succeeds when there is none (virsh says so).
      const handle = await access(machine)
      await handle.virsh(['managedsave-remove', handle.domain], `discard the saved state of domain ${handle.domain}`)
    },
  }
}

/**
 * How the engine's start continues a machine: from a managed save, the plain `virsh start`
 * (libvirt resumes from it); from a snapshot with memory, a revert that leaves it running.
 */
export function startArgs(domain: string, from: StartFrom | undefined): string[] {
  if (from?.kind === 'snapshot') return ['snapshot-revert', domain, '--snapshotname', from.name, '--running']
  return ['start', domain]
}
