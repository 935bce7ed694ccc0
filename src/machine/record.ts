import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'

import type {SshJump} from '../driver/driver.js'
import type {ResolvedForward} from '../network/forwards.js'
import type {NicStatus} from './networks.js'
import type {BootStage} from './stages.js'
import type {MachineConfig} from '../vmfile/types.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {ensureStateDir} from '../state/private-dir.js'

/** The box a machine was created from; the machine stays pinned to it. */
export interface PinnedBox {
  name: string
  version: string
  architecture: string
  provider: string
  /** Disks of the box in the store, in order (the overlays' backing files). */
  disks: Array<{path: string; format: 'qcow2' | 'raw'}>
  kernel?: string | undefined
  initrd?: string | undefined
  cmdline?: string | undefined
  firmware?: string | undefined
  sshUser?: string | undefined
  /** The box's virtual_size (GB, as Vagrant's libvirt boxes give it): the first disk is at least this large. */
  virtualSize?: number | undefined
  /** A cloud image: no user and no key of its own; its machines boot with a cloud-init seed. */
  cloudInit?: boolean | undefined
}

export type BridgeKind = 'linux' | 'ovs'

/** A host device the engine made for a bridged NIC (a tap, as root); the driver removes it on halt and destroy. */
export interface TapRecord {
  name: string
  bridge: string
  kind: BridgeKind
}

/** A snapshot as vm recorded it when it was taken. */
export interface SnapshotRecord {
  name: string
  createdAt: string
  /** Taken while the machine ran: memory and device state included. */
  memory: boolean
  /** The box the machine ran on then (a restore onto another version is refused). */
  box: {name: string; version: string}
  /** Each disk's virtual size in bytes then (a restore onto other sizes is refused). */
  diskSizes: number[]
  /** Made by vm snapshot push (vm snapshot pop takes the newest of these). */
  pushed?: boolean | undefined
}

/** machine.json: what vm recorded about a machine. Status never trusts it alone. */
export interface MachineRecord {
  format: 1
  id: string
  name: string
  projectDir: string
  /** The engine that owns the machine (src/driver/registry.ts); absent in records made before engines had names: QEMU. */
  driver?: string | undefined
  createdAt: string
  box: PinnedBox
  /** The resolved config the machine was created or last booted with. */
  config: MachineConfig
  macs: string[]
  accel?: string | undefined
  /** Where SSH answers (the endpoint the driver returned) and as whom. */
  ssh?: {
    host: string
    port: number
    user: string
    /** The key stage is done: the machine's own key replaced the first-login keys, or insert_key: false kept them (loginKeys). */
    keyReplaced: boolean
    jump?: SshJump | undefined
    /** With insert_key: false, the keys vm keeps logging in with; absent: the machine's own key. */
    loginKeys?: string[] | undefined
  }
  vncDisplay?: number | undefined
  /** A machine of the libvirt engine: the host (libvirt URI) it was created on, its pool and domain. */
  libvirt?: {uri: string; pool: string; domain: string} | undefined
  /** Forwarded ports as set up at the last boot (auto_correct may have changed host ports). */
  forwards?: ResolvedForward[]
  /** Tap devices vm made for bridged NICs (as root); removed on halt and destroy. */
  taps?: TapRecord[] | undefined
  /** Every NIC with the address the guest reported at the last boot. */
  nics?: NicStatus[] | undefined
  /** running after a boot, poweroff after a clean halt, saved after vm suspend. */
  lastState: 'poweroff' | 'running' | 'saved'
  /** What vm knows of each snapshot beyond what the engine holds (box, disk sizes, memory), oldest first. */
  snapshots?: SnapshotRecord[] | undefined
  /** Every provisioner succeeded once; until then each vm up runs them again. */
  provisioned?: boolean
  /**
   * A machine of a cloud-image box: its NoCloud seed, a file in the machine's directory that
   * the engine attaches read-only (cloud-init creates the SSH user with the machine's own key).
   */
  cloudInit?: {seed: string} | undefined
  /** The host name last set in the guest (hostname.ts); set again when the config's differs. */
  hostname?: string | undefined
  /** Stages of the current boot not finished yet (stages.ts); a vm up finishes them. */
  pending?: BootStage[] | undefined
  updatedAt: string
}

/** machine.json exists but cannot be used: unreadable, not JSON, or not a machine record. */
export class RecordUnreadableError extends UserError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`The machine record ${file} is unreadable: ${reason}`, {
      code: 'MACHINE_RECORD_UNREADABLE',
      hint: `Restore the file from a backup, or remove the machine with "vm destroy -f ${path.basename(path.dirname(file))}" (it stops the machine's QEMU and deletes its disk) and run "vm up" again.`,
    })
  }
}

function recordProblem(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return 'not a JSON object'
  const record = data as Record<string, unknown>
  for (const key of ['id', 'name', 'projectDir'] as const) if (typeof record[key] !== 'string') return `"${key}" is missing or not a string`
  for (const key of ['box', 'config'] as const)
    if (typeof record[key] !== 'object' || record[key] === null) return `"${key}" is missing or not an object`
  if (!Array.isArray(record.macs)) return '"macs" is missing or not a list'
  if (!Array.isArray((record.box as {disks?: unknown}).disks)) return '"box.disks" is missing or not a list'
  return undefined
}

/** The record, or undefined when there is none; a record that cannot be used is a RecordUnreadableError. */
export async function readRecord(file: string): Promise<MachineRecord | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    throw new RecordUnreadableError(file, `${code ?? 'error'}: ${(error as Error).message}`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new RecordUnreadableError(file, `not valid JSON (${(error as Error).message})`)
  }
  const problem = recordProblem(data)
  if (problem !== undefined) throw new RecordUnreadableError(file, problem)
  return data as MachineRecord
}

/** Writes the record atomically (temp file + rename), so a crash never leaves half a file. */
export async function writeRecord(file: string, record: MachineRecord): Promise<void> {
  await ensureStateDir(path.dirname(file))
  await writeFileAtomic(file, `${JSON.stringify({...record, updatedAt: new Date().toISOString()}, null, 2)}\n`, {mode: 0o600})
}
