import {readdir, rm} from 'node:fs/promises'
import path from 'node:path'

import {forgetBoxUse} from '../box/references.js'
import {UserError} from '../errors/errors.js'
import {stopQemu, type StopMethod} from '../driver/qemu/process.js'
import {releaseForwards} from '../network/forwards.js'
import {releaseLease} from '../network/ports.js'
import {listIndex, removeFromIndex} from '../state/global-index.js'
import {machinePaths, type MachinePaths} from '../state/machine-files.js'
import {vmPaths} from '../state/paths.js'
import {processesHolding, type MachineProcess} from '../state/process-check.js'
import {inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {adoptMovedProject} from './moved.js'
import {detachNetworks} from './networks.js'
import {writeRecord, type MachineRecord} from './record.js'

export interface HaltResult {
  name: string
  /** State before the halt. */
  was: string
  method: StopMethod | 'not-created'
}

export interface HaltEvents {
  warn(text: string): void
}

const noEvents: HaltEvents = {warn: () => {}}

/** The machine id a running QEMU was started with: its QMP socket is named after it. */
function idFromProcess(found: MachineProcess | undefined): string | undefined {
  const match = found?.qmpSocket === undefined ? undefined : /^([0-9a-f]{16})\.qmp$/.exec(path.basename(found.qmpSocket))
  return match?.[1]
}

/**
 * Gives back every port the machine's QEMU held (SSH, VNC, forwarded ports). Leases of a dead
 * QEMU are taken over anyway; releasing them at once keeps them from looking held meanwhile.
 */
async function releaseMachineLeases(record: MachineRecord): Promise<void> {
  const leases = path.join(vmPaths().runtime, 'ports')
  if (record.ssh !== undefined) await releaseLease(leases, record.ssh.port, record.id)
  if (record.vncDisplay !== undefined) await releaseLease(leases, 5900 + record.vncDisplay, record.id)
  await releaseForwards(leases, record.id, record.forwards ?? [])
}

/** ACPI power-down, wait `graceMs` (0 = none), then quit, then kill; records poweroff. */
export async function haltMachine(projectDir: string, name: string, graceMs: number, events: HaltEvents = noEvents): Promise<HaltResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  try {
    const {status, record: found, unreadable, process: running} = await inspectMachine(projectDir, name)
    if (unreadable !== undefined) {
      // Without a record, do what the files allow: stop the QEMU the pidfile names; the
      // record stays as it is for the user to restore or destroy.
      const method = await stopQemu(running, paths.process, graceMs)
      await rm(paths.pid, {force: true})
      events.warn(`${unreadable.message}. ${unreadable.hint ?? ''}`)
      return {name, was: status.state, method}
    }
    if (found === undefined) return {name, was: status.state, method: 'not-created'}
    const record = await adoptMovedProject(found, projectDir, paths, false, events.warn)
    const method = await stopQemu(running, paths.process, graceMs)
    await detachNetworks(record)
    await releaseMachineLeases(record)
    await writeRecord(paths.record, {...record, lastState: 'poweroff', pending: undefined})
    await rm(paths.pid, {force: true})
    return {name, was: status.state, method}
  } finally {
    await unlock()
  }
}

export interface DestroyResult {
  name: string
  was: string
  destroyed: boolean
}

/** Refuses to go on while any process (a QEMU whose pidfile was lost, say) has a disk of the machine open. */
async function ensureDisksUnused(paths: MachinePaths, name: string): Promise<void> {
  const disks = (await readdir(paths.dir).catch(() => [] as string[])).filter((file) => /^disk\d+\.qcow2$/.test(file))
  const holders = [...new Set(disks.flatMap((disk) => processesHolding(path.join(paths.dir, disk))))]
  if (holders.length > 0) {
    throw new UserError(`Machine ${name}'s disk is still in use by process ${holders.join(', ')}; nothing was deleted`, {
      code: 'DISK_IN_USE',
      hint: `Stop process ${holders.join(', ')} first (it may be the machine's QEMU), then run "vm destroy -f ${name}" again.`,
    })
  }
}

/** Stops the machine at once and removes its overlay and state; never touches the box. */
export async function destroyMachine(projectDir: string, name: string): Promise<DestroyResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  let removed = false
  try {
    const {status, record, unreadable, process: running} = await inspectMachine(projectDir, name)
    if (record === undefined && unreadable === undefined) return {name, was: status.state, destroyed: false}
    await stopQemu(running, paths.process, 0)
    await ensureDisksUnused(paths, name)
    if (record !== undefined) {
      await detachNetworks(record)
      await releaseMachineLeases(record)
      await removeFromIndex(record.id)
      await rm(machinePaths(projectDir, name, undefined, record.id).qmpSocket, {force: true})
      if (running?.qmpSocket !== undefined) await rm(running.qmpSocket, {force: true})
    } else {
      // An unreadable record: the id is known from QEMU's QMP socket when it ran, and the
      // index names the machine by project and name. Leases die with their QEMU.
      const id = idFromProcess(running)
      if (running?.qmpSocket !== undefined) await rm(running.qmpSocket, {force: true})
      const {live} = await listIndex()
      const resolved = path.resolve(projectDir)
      const ids = new Set(
        live.filter((entry) => entry.name === name && path.resolve(entry.projectDir) === resolved).map((entry) => entry.id),
      )
      if (id !== undefined) ids.add(id)
      for (const stale of ids) await removeFromIndex(stale)
    }
    await rm(paths.dir, {recursive: true, force: true})
    if (record !== undefined) await forgetBoxUse(record.box, record.id)
    removed = true
    return {name, was: status.state, destroyed: true}
  } finally {
    if (!removed) await unlock()
  }
}
