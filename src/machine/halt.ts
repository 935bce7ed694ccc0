import {rm} from 'node:fs/promises'
import path from 'node:path'

import {forgetBoxUse} from '../box/references.js'
import type {StopMethod} from '../driver/driver.js'
import {driverOf} from '../driver/registry.js'
import {listIndex, removeFromIndex} from '../state/global-index.js'
import {machinePaths} from '../state/machine-files.js'
import type {MachineEvents} from './events.js'
import {inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {adoptMovedProject} from './moved.js'
import {writeRecord} from './record.js'
import {closeMachineConnections} from './ssh.js'
import {UserError} from '../errors/errors.js'

export interface HaltResult {
  name: string
  /** State before the halt. */
  was: string
  method: StopMethod | 'discarded-saved-state' | 'not-created'
}

export interface HaltOptions {
  /** A suspended machine's saved state may be thrown away (the user agreed, or passed --force). */
  discardSaved?: boolean | undefined
}

export type HaltEvents = Pick<MachineEvents, 'warn'>

const noEvents: HaltEvents = {warn: () => {}}

/** ACPI power-down, wait `graceMs` (0 = none), then harder, as the machine's driver does it; records poweroff. */
export async function haltMachine(
  projectDir: string,
  name: string,
  graceMs: number,
  events: HaltEvents = noEvents,
  options: HaltOptions = {},
): Promise<HaltResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  try {
    const {status, record: found, unreadable} = await inspectMachine(projectDir, name)
    if (unreadable !== undefined) {
      // Without a record, do what the engine's own files allow: stop the machine; the record
      // stays as it is for the user to restore or destroy.
      const {method} = await (await driverOf(undefined)).stop({name, dir: paths.dir, id: undefined, record: undefined}, graceMs)
      events.warn(`${unreadable.message}. ${unreadable.hint ?? ''}`)
      return {name, was: status.state, method}
    }
    if (found === undefined) return {name, was: status.state, method: 'not-created'}
    const record = await adoptMovedProject(found, projectDir, paths, false, events.warn)
    await closeMachineConnections(record)
    if (status.state === 'saved') {
      // Halting a suspended machine throws its saved state away: only when the user said so.
      if (options.discardSaved !== true)
        throw new UserError(`Machine ${name} is suspended: halting it discards its saved state`, {
          code: 'MACHINE_SAVED',
          hint: `Run "vm resume ${name}" to continue it, or "vm halt -f ${name}" to discard the saved state.`,
        })
      await (await driverOf(record)).suspension?.discard({name, dir: paths.dir, id: record.id, record})
      await writeRecord(paths.record, {...record, lastState: 'poweroff', pending: undefined})
      return {name, was: status.state, method: 'discarded-saved-state'}
    }
    const stopped = await (await driverOf(record)).stop({name, dir: paths.dir, id: record.id, record}, graceMs)
    await writeRecord(paths.record, {...(stopped.record ?? record), lastState: 'poweroff', pending: undefined})
    return {name, was: status.state, method: stopped.method}
  } finally {
    await unlock()
  }
}

export interface DestroyResult {
  name: string
  was: string
  destroyed: boolean
}

/** Stops the machine at once and removes its disks and state; never touches the box. */
export async function destroyMachine(projectDir: string, name: string): Promise<DestroyResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  let removed = false
  try {
    const {status, record, unreadable} = await inspectMachine(projectDir, name)
    if (record === undefined && unreadable === undefined) return {name, was: status.state, destroyed: false}
    await closeMachineConnections(record)
    const {ids} = await (await driverOf(record)).destroy({name, dir: paths.dir, id: record?.id, record})
    if (record !== undefined) await removeFromIndex(record.id)
    else {
      // An unreadable record: the index names the machine by project and name, the engine by id.
      const {live} = await listIndex()
      const resolved = path.resolve(projectDir)
      const stale = new Set(
        live.filter((entry) => entry.name === name && path.resolve(entry.projectDir) === resolved).map((entry) => entry.id),
      )
      for (const id of ids) stale.add(id)
      for (const id of stale) await removeFromIndex(id)
    }
    await rm(paths.dir, {recursive: true, force: true})
    if (record !== undefined) await forgetBoxUse(record.box, record.id)
    removed = true
    return {name, was: status.state, destroyed: true}
  } finally {
    if (!removed) await unlock()
  }
}
