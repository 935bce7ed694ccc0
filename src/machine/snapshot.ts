import type {CreatedMachine, MachineDriver} from '../driver/driver.js'
import {UserError} from '../errors/errors.js'
import {closeMaster} from '../ssh/master.js'
import type {SshTarget} from '../ssh/options.js'
import {machinePaths, type MachinePaths} from '../state/machine-files.js'
import type {MachineState} from '../state/machine-state.js'
import type {MachineConfig} from '../vmfile/types.js'
import type {MachineEvents} from './events.js'
import {armContinuation, continueGuest, mountShares, unmountShares} from './guest-continuity.js'
import {createdMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {writeRecord, type MachineRecord, type SnapshotRecord} from './record.js'
import {checkSnapshotName, newestPushed, pushName, restoreProblem, snapshotSupport} from './snapshot-rules.js'
import {machineKeys, sshTarget} from './ssh-target.js'
import {describeStages, unfinishedStages} from './stages.js'
import {foldersFor} from './up-converge.js'
import {upMachine} from './up.js'

/**
 * vm snapshot: save, restore, list, delete, push, pop. Snapshots are the engine's (QEMU: qcow2
 * internal snapshots in the machine's disks, so they go with vm destroy); the record keeps what
 * the engine does not: the box and disk sizes each was taken on, and whether it was pushed.
 */

export interface SnapshotEntry {
  name: string
  createdAt: string
  /** Memory and device state included (taken while the machine ran): restore brings it back running. */
  memory: boolean
  /** Bytes of memory and device state. */
  memoryBytes: number
  /** The disks' virtual sizes then, in bytes (undefined for a snapshot vm did not take). */
  diskSizes: number[] | undefined
  box: {name: string; version: string} | undefined
  pushed: boolean
}

export interface SnapshotResult {
  machine: string
  snapshot: string
  action: 'deleted' | 'restored' | 'saved'
  memory: boolean
  /** The machine's state afterwards. */
  state: MachineState
}

interface Held {
  name: string
  paths: MachinePaths
  record: MachineRecord
  state: MachineState
  driver: MachineDriver
  ops: NonNullable<MachineDriver['snapshots']>
  machine: CreatedMachine
}

function target(held: Pick<Held, 'paths' | 'record'>): SshTarget {
  return sshTarget(held.record, held.paths, machineKeys(held.record, held.paths), 'yes')
}

/** Runs `work` on a created machine under its lock, once its engine is known to do snapshots. */
async function withMachine<T>(projectDir: string, name: string, work: (held: Held) => Promise<T>): Promise<T> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  try {
    const {status, record, driver} = await createdMachine(projectDir, name)
    const ops = snapshotSupport(driver, name)
    const machine = {name, dir: paths.dir, id: record.id, record}
    return await work({name, paths, record, state: status.state, driver, ops, machine})
  } finally {
    await unlock()
  }
}

function refuseSaved(held: Held, verb: string): void {
  if (held.state === 'saved')
    throw new UserError(`Machine ${held.name} is suspended; vm cannot ${verb} a snapshot of it now`, {
      code: 'MACHINE_SAVED',
      hint: `Run "vm resume ${held.name}" first (or "vm halt -f ${held.name}" to discard its saved state).`,
    })
  if (held.state === 'running' && unfinishedStages(held.record).length > 0)
    throw new UserError(`Machine ${held.name}'s boot did not finish (${describeStages(unfinishedStages(held.record))})`, {
      code: 'BOOT_UNFINISHED',
      hint: `Run "vm up ${held.name}" to finish it first.`,
    })
}

async function heldNames(held: Held): Promise<Set<string>> {
  return new Set((await held.ops.list(held.machine)).map((snapshot) => snapshot.name))
}

async function takeSnapshot(held: Held, snapshot: string, pushed: boolean): Promise<SnapshotResult> {
  refuseSaved(held, 'take')
  if ((await heldNames(held)).has(snapshot))
    throw new UserError(`Machine ${held.name} already has a snapshot named ${snapshot}`, {
      code: 'SNAPSHOT_EXISTS',
      hint: `Pick another name, or run "vm snapshot delete ${held.name} ${snapshot}" first.`,
    })
  const diskSizes = await held.ops.diskSizes(held.machine)
  const running = held.state === 'running'
  if (running) {
    const folders = foldersFor(held.driver, held.record.config.syncedFolders, held.record.config)
    const unmounted = await unmountShares(target(held), folders)
    // A root helper waits in the snapshot's guest: the login after it is restored needs no sudo.
    await armContinuation(target(held), folders)
    try {
      await held.ops.save(held.machine, snapshot, true)
    } finally {
      await mountShares(target(held), folders, unmounted)
    }
  } else await held.ops.save(held.machine, snapshot, false)
  const entry: SnapshotRecord = {
    name: snapshot,
    createdAt: new Date().toISOString(),
    memory: running,
    box: {name: held.record.box.name, version: held.record.box.version},
    diskSizes,
    ...(pushed ? {pushed: true} : {}),
  }
  held.record = {...held.record, snapshots: [...(held.record.snapshots ?? []).filter((other) => other.name !== snapshot), entry]}
  await writeRecord(held.paths.record, held.record)
  return {machine: held.name, snapshot, action: 'saved', memory: running, state: held.state}
}

export async function saveSnapshot(projectDir: string, name: string, snapshot: string): Promise<SnapshotResult> {
  checkSnapshotName(snapshot)
  return withMachine(projectDir, name, (held) => takeSnapshot(held, snapshot, false))
}

export async function pushSnapshot(projectDir: string, name: string): Promise<SnapshotResult> {
  return withMachine(projectDir, name, async (held) => takeSnapshot(held, pushName(new Date(), await heldNames(held)), true))
}

function noSuchSnapshot(held: Held, snapshot: string, names: Set<string>): UserError {
  return new UserError(`Machine ${held.name} has no snapshot named ${snapshot}`, {
    code: 'NO_SUCH_SNAPSHOT',
    hint: names.size === 0 ? 'It has no snapshots.' : `Its snapshots: ${[...names].join(', ')}.`,
  })
}

/** What the locked part of a restore leaves to do: a halted machine's memory snapshot is booted from. */
type RestoreStep = {boot: false; result: SnapshotResult} | {boot: true; memory: true}

async function restoreLocked(held: Held, snapshot: string, events: MachineEvents): Promise<RestoreStep> {
  refuseSaved(held, 'restore')
  const engine = await held.ops.list(held.machine)
  const found = engine.find((candidate) => candidate.name === snapshot)
  if (found === undefined) throw noSuchSnapshot(held, snapshot, new Set(engine.map((candidate) => candidate.name)))
  const recorded = held.record.snapshots?.find((candidate) => candidate.name === snapshot)
  const problem = restoreProblem(snapshot, recorded, {box: held.record.box, diskSizes: await held.ops.diskSizes(held.machine)})
  if (problem !== undefined)
    throw new UserError(`Refusing to restore ${problem}`, {
      code: 'SNAPSHOT_MISMATCH',
      hint: `Restoring it would mix its disks with another box or disk size. Take a new snapshot, or "vm snapshot delete ${held.name} ${snapshot}".`,
    })
  const memory = found.memoryBytes > 0
  const running = held.state === 'running'
  if (memory && !running) return {boot: true, memory: true}
  if (running && !memory) {
    // A disk snapshot was taken halted: the machine goes back to that, halted.
    events.info('the snapshot holds no memory: stopping the machine to put its disks back')
    await closeMaster(held.record.id)
    const {record} = await held.driver.stop(held.machine, 0)
    held.record = {...(record ?? held.record), lastState: 'poweroff', pending: undefined}
    await writeRecord(held.paths.record, held.record)
  }
  if (running && memory) {
    const folders = foldersFor(held.driver, held.record.config.syncedFolders, held.record.config)
    // QEMU resets the machine's devices before it loads a snapshot: nothing of the 9p shares mounted now survives.
    // A shared SSH connection would point into the guest's past: end it before the guest jumps.
    await closeMaster(held.record.id)
    await held.ops.restore(held.machine, snapshot, true)
    // The guest continues from the snapshot: its clock set, its synced folders mounted or copied again.
    await continueGuest(target(held), folders, (text) => events.info(text))
    return {boot: false, result: {machine: held.name, snapshot, action: 'restored', memory, state: 'running'}}
  }
  await held.ops.restore(held.machine, snapshot, false)
  return {boot: false, result: {machine: held.name, snapshot, action: 'restored', memory, state: 'poweroff'}}
}

export async function restoreSnapshot(
  projectDir: string,
  config: MachineConfig,
  snapshot: string,
  events: MachineEvents,
): Promise<SnapshotResult> {
  checkSnapshotName(snapshot)
  const step = await withMachine(projectDir, config.name, (held) => restoreLocked(held, snapshot, events))
  if (!step.boot) return step.result
  // A halted machine continues from the snapshot's memory: booted from it, then connected as after a resume.
  await upMachine(projectDir, config, events, {from: {kind: 'snapshot', name: snapshot}})
  return {machine: config.name, snapshot, action: 'restored', memory: true, state: 'running'}
}

export async function deleteSnapshot(projectDir: string, name: string, snapshot: string): Promise<SnapshotResult> {
  return withMachine(projectDir, name, async (held) => {
    const names = await heldNames(held)
    if (!names.has(snapshot)) throw noSuchSnapshot(held, snapshot, names)
    const recorded = held.record.snapshots?.find((candidate) => candidate.name === snapshot)
    await held.ops.delete(held.machine, snapshot, held.state === 'running')
    held.record = {...held.record, snapshots: (held.record.snapshots ?? []).filter((other) => other.name !== snapshot)}
    await writeRecord(held.paths.record, held.record)
    return {machine: held.name, snapshot, action: 'deleted', memory: recorded?.memory ?? false, state: held.state}
  })
}

/** vm snapshot pop: restores the newest pushed snapshot, then deletes it unless `keep`. */
export async function popSnapshot(
  projectDir: string,
  config: MachineConfig,
  keep: boolean,
  events: MachineEvents,
): Promise<SnapshotResult> {
  const chosen = await withMachine(projectDir, config.name, async (held) => {
    const newest = newestPushed(held.record.snapshots ?? [], await heldNames(held))
    if (newest === undefined)
      throw new UserError(`Machine ${config.name} has no pushed snapshot to pop`, {
        code: 'NO_SUCH_SNAPSHOT',
        hint: `Run "vm snapshot push ${config.name}" first.`,
      })
    return newest.name
  })
  const result = await restoreSnapshot(projectDir, config, chosen, events)
  if (!keep) await deleteSnapshot(projectDir, config.name, chosen)
  return result
}

export async function listSnapshots(projectDir: string, name: string): Promise<{machine: string; snapshots: SnapshotEntry[]}> {
  return withMachine(projectDir, name, async (held) => {
    const engine = await held.ops.list(held.machine)
    const snapshots = engine.map((snapshot): SnapshotEntry => {
      const recorded = held.record.snapshots?.find((candidate) => candidate.name === snapshot.name)
      return {
        name: snapshot.name,
        createdAt: recorded?.createdAt ?? snapshot.createdAt,
        memory: snapshot.memoryBytes > 0,
        memoryBytes: snapshot.memoryBytes,
        diskSizes: recorded?.diskSizes,
        box: recorded?.box,
        pushed: recorded?.pushed === true,
      }
    })
    return {machine: held.name, snapshots}
  })
}
