import type {MachineDriver, StartFrom} from '../driver/driver.js'
import type {Interruption} from '../process/interrupt.js'
import {guestAcceptsKey, runInGuest} from '../ssh/exec.js'
import {waitForSsh} from '../ssh/wait.js'
import type {MachinePaths} from '../state/machine-files.js'
import type {MachineConfig} from '../vmfile/types.js'
import type {MachineEvents} from './events.js'
import {writeRecord, type MachineRecord} from './record.js'
import {finishStage, type BootStage} from './stages.js'

export interface UpOptions {
  /** Boot with the Vmfile's current settings instead of the recorded ones (vm reload). */
  applyConfig?: boolean
  /** true: run the provisioners (--provision); false: never (--no-provision); default: first up. */
  provision?: boolean | undefined
  /** Only these provisioners (names or types), --provision-with. */
  provisionWith?: string[] | undefined
  /** Ctrl-C and SIGTERM: a boot this call started is undone (or left resumable) when they abort it. */
  interrupt?: Interruption | undefined
  /** The engine a new machine gets (a machine keeps the one it was created with); default qemu. */
  driver?: string | undefined
  /** Continue from a saved state or a snapshot with memory instead of booting (set by up itself for a suspended machine). */
  from?: StartFrom | undefined
}

/** How vm talks to a guest over SSH while booting it; real OpenSSH unless a test says otherwise. */
export interface GuestAccess {
  waitForSsh: typeof waitForSsh
  runInGuest: typeof runInGuest
  guestAcceptsKey: typeof guestAcceptsKey
}

export const openSsh: GuestAccess = {waitForSsh, runInGuest, guestAcceptsKey}

/** One boot of one machine, as its stages see and advance it. */
export interface Boot {
  projectDir: string
  /** The Vmfile's config (provisioners come from it). */
  config: MachineConfig
  paths: MachinePaths
  driver: MachineDriver
  options: UpOptions
  events: MachineEvents
  guest: GuestAccess
  created: boolean
  /** The machine's record as the stages advance it. */
  record: MachineRecord
  /** Set while Ctrl-C must undo the boot instead of ending vm at once; called when vm up ends. */
  release?: (() => void) | undefined
}

/** Records that `stage` finished (and stops here when the boot was interrupted). */
export async function finishBootStage(boot: Boot, stage: BootStage): Promise<void> {
  boot.options.interrupt?.signal.throwIfAborted()
  boot.record = {...boot.record, pending: finishStage(boot.record.pending ?? [], stage)}
  await writeRecord(boot.paths.record, boot.record)
}

/** The machine as its driver sees it. */
export function driverMachine(boot: Boot): {name: string; dir: string; id: string; record: MachineRecord} {
  return {name: boot.record.name, dir: boot.paths.dir, id: boot.record.id, record: boot.record}
}
