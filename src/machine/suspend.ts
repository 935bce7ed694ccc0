import {driverOf} from '../driver/registry.js'
import {UserError} from '../errors/errors.js'
import {machinePaths} from '../state/machine-files.js'
import type {MachineState} from '../state/machine-state.js'
import type {MachineConfig} from '../vmfile/types.js'
import {openSsh, type GuestAccess} from './boot-context.js'
import type {MachineEvents} from './events.js'
import {armContinuation, mountShares, unmountShares} from './guest-continuity.js'
import {createdMachine, inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {writeRecord} from './record.js'
import {suspendSupport} from './snapshot-rules.js'
import {closeMaster} from '../ssh/master.js'
import {machineKeys, sshTarget} from './ssh-target.js'
import {describeStages, unfinishedStages} from './stages.js'
import {foldersFor} from './up-converge.js'
import {upMachine, type UpResult} from './up.js'

/**
 * vm suspend and vm resume: the running state saved into the machine's directory by its engine
 * and the engine stopped (status `saved`); vm resume or vm up continue from it.
 */

export interface SuspendResult {
  name: string
  /** State before. */
  was: MachineState
  /** State after: saved, or what it was when there was nothing to suspend. */
  state: MachineState
}

export async function suspendMachine(projectDir: string, name: string): Promise<SuspendResult> {
  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  try {
    const {status, record, driver} = await createdMachine(projectDir, name)
    const suspension = suspendSupport(driver, name)
    if (status.state === 'saved') return {name, was: 'saved', state: 'saved'}
    if (status.state !== 'running')
      throw new UserError(`Machine ${name} is not running (state: ${status.state}); there is nothing to suspend`, {
        code: 'NOT_RUNNING',
        hint: `Run "vm up ${name}" first.`,
      })
    const left = unfinishedStages(record)
    if (left.length > 0)
      throw new UserError(`Machine ${name}'s boot did not finish (${describeStages(left)})`, {
        code: 'BOOT_UNFINISHED',
        hint: `Run "vm up ${name}" to finish it first.`,
      })
    const target = sshTarget(record, paths, machineKeys(record, paths), 'yes')
    const folders = foldersFor(driver, record.config.syncedFolders, record.config)
    const unmounted = await unmountShares(target, folders)
    // A root helper waits in the saved guest: the login after vm resume needs no sudo.
    await armContinuation(target, folders)
    await closeMaster(record.id)
    let stopped
    try {
      stopped = await suspension.suspend({name, dir: paths.dir, id: record.id, record})
    } catch (error) {
      await mountShares(target, folders, unmounted).catch(() => undefined)
      throw error
    }
    await writeRecord(paths.record, {...(stopped.record ?? record), lastState: 'saved', pending: undefined})
    return {name, was: 'running', state: 'saved'}
  } finally {
    await unlock()
  }
}

export interface ResumeResult {
  name: string
  was: MachineState
  up: UpResult | undefined
}

/** vm resume: a suspended machine continues (vm up does the same); a running one is left alone. */
export async function resumeMachine(
  projectDir: string,
  config: MachineConfig,
  events: MachineEvents,
  guest: GuestAccess = openSsh,
): Promise<ResumeResult> {
  const {status, record, unreadable} = await inspectMachine(projectDir, config.name)
  if (unreadable !== undefined) throw unreadable
  if (record !== undefined) suspendSupport(await driverOf(record), config.name)
  if (status.state === 'running') return {name: config.name, was: 'running', up: undefined}
  if (status.state !== 'saved')
    throw new UserError(`Machine ${config.name} is not suspended (state: ${status.state})`, {
      code: 'NOT_SAVED',
      hint: `Run "vm up ${config.name}" to boot it.`,
    })
  return {name: config.name, was: 'saved', up: await upMachine(projectDir, config, events, {}, guest)}
}
