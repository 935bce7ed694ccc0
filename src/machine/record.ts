import {readFile} from 'node:fs/promises'
import path from 'node:path'

import type {TapRecord} from '../network/bridge.js'
import type {ResolvedForward} from '../network/forwards.js'
import type {NicStatus} from './networks.js'
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
}

/** machine.json: what vm recorded about a machine. Status never trusts it alone. */
export interface MachineRecord {
  format: 1
  id: string
  name: string
  projectDir: string
  createdAt: string
  box: PinnedBox
  /** The resolved config the machine was created or last booted with. */
  config: MachineConfig
  macs: string[]
  accel?: 'kvm' | 'tcg'
  ssh?: {host: string; port: number; user: string; keyReplaced: boolean}
  vncDisplay?: number | undefined
  /** Forwarded ports as set up at the last boot (auto_correct may have changed host ports). */
  forwards?: ResolvedForward[]
  /** Tap devices vm made for bridged NICs (as root); removed on halt and destroy. */
  taps?: TapRecord[] | undefined
  /** Every NIC with the address the guest reported at the last boot. */
  nics?: NicStatus[] | undefined
  /** running after a boot, poweroff after a clean halt. */
  lastState: 'poweroff' | 'running'
  /** Every provisioner succeeded once; until then each vm up runs them again. */
  provisioned?: boolean
  updatedAt: string
}

export async function readRecord(file: string): Promise<MachineRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as MachineRecord
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Writes the record atomically (a fresh O_EXCL|O_NOFOLLOW temp file, then rename), so a crash
 * never leaves half a file and a link planted in the machine directory is never followed.
 * The record is private (0600) in a private (0700) machine directory.
 */
export async function writeRecord(file: string, record: MachineRecord): Promise<void> {
  await ensureStateDir(path.dirname(file))
  await writeFileAtomic(file, `${JSON.stringify({...record, updatedAt: new Date().toISOString()}, null, 2)}\n`, {mode: 0o600})
}
