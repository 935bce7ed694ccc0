import {rm} from 'node:fs/promises'
import path from 'node:path'

import {forgetBoxUse} from '../box/references.js'
import {stopQemu, type StopMethod} from '../driver/qemu/process.js'
import {releaseLease} from '../network/ports.js'
import {removeFromIndex} from '../state/global-index.js'
import {machinePaths} from '../state/machine-files.js'
import {vmPaths} from '../state/paths.js'
import {readPidfile} from '../state/process-check.js'
import {inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {detachNetworks} from './networks.js'
import {writeRecord} from './record.js'

export interface HaltResult {
  name: string
  /** State before the halt. */
  was: string
  method: StopMethod | 'not-created'
}

/** ACPI power-down, wait `graceMs` (0 = none), then quit, then kill; records poweroff. */
export async function haltMachine(projectDir: string, name: string, graceMs: number): Promise<HaltResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  try {
    const {status, record} = await inspectMachine(projectDir, name)
    if (record === undefined) return {name, was: status.state, method: 'not-created'}
    const method = await stopQemu(readPidfile(paths.pid), paths.qmpSocket, graceMs)
    await detachNetworks(record)
    if (record.ssh !== undefined) await releaseLease(path.join(vmPaths().runtime, 'ports'), record.ssh.port, record.id)
    if (record.vncDisplay !== undefined) await releaseLease(path.join(vmPaths().runtime, 'ports'), 5900 + record.vncDisplay, record.id)
    await writeRecord(paths.record, {...record, lastState: 'poweroff'})
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

/** Stops the machine at once and removes its overlay and state; never touches the box. */
export async function destroyMachine(projectDir: string, name: string): Promise<DestroyResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  let removed = false
  try {
    const {status, record} = await inspectMachine(projectDir, name)
    if (record === undefined) return {name, was: status.state, destroyed: false}
    await stopQemu(readPidfile(paths.pid), paths.qmpSocket, 0)
    await detachNetworks(record)
    if (record.ssh !== undefined) await releaseLease(path.join(vmPaths().runtime, 'ports'), record.ssh.port, record.id)
    await removeFromIndex(record.id)
    await rm(paths.dir, {recursive: true, force: true})
    await rm(paths.qmpSocket, {force: true})
    await forgetBoxUse(record.box, record.id)
    removed = true
    return {name, was: status.state, destroyed: true}
  } finally {
    if (!removed) await unlock()
  }
}
