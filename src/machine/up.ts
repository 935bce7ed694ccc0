import {rmdir} from 'node:fs/promises'

import {DEFAULT_DRIVER, driverNamed, driverOf} from '../driver/registry.js'
import {UserError, VmError} from '../errors/errors.js'
import {machinePaths} from '../state/machine-files.js'
import {engineProblemsError} from '../vmfile/index.js'
import type {MachineConfig} from '../vmfile/types.js'
import {openSsh, type Boot, type GuestAccess, type UpOptions} from './boot-context.js'
import type {MachineEvents} from './events.js'
import {inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {adoptMovedProject} from './moved.js'
import type {MachineRecord} from './record.js'
import {waitForCloudInit} from './cloud-init.js'
import {describeStages, firstBootUnfinished, unfinishedStages} from './stages.js'
import {bootMachine, stopUnfinished} from './up-boot.js'
import {connectContinuedGuest, connectToGuest} from './up-connect.js'
import {convergeGuest, foldersFor, provisionAfterBoot, provisioningForced} from './up-converge.js'
import {bootRelevant, clearMachineDir, createMachine, missingDirs} from './up-prepare.js'
import {snapshotSupport, suspendSupport} from './snapshot-rules.js'
import {closeMaster} from '../ssh/master.js'

export type {UpOptions} from './boot-context.js'
export {newMachineId} from './up-prepare.js'

/**
 * vm up for one machine, in four stages: prepare (box, disks, record: up-prepare.ts), boot (the
 * machine's driver starts it: up-boot.ts), connect (SSH, the machine's own key: up-connect.ts)
 * and converge (guest networks, synced folders, provisioners: up-converge.ts).
 */

export interface UpResult {
  name: string
  state: 'running'
  alreadyRunning: boolean
  created: boolean
  box: {name: string; version: string}
  accel: string | undefined
  ssh: {host: string; port: number; user: string} | undefined
  bootMs: number | undefined
  /** Names of the provisioners that ran. */
  provisioned: string[]
}

/** vm up was interrupted (Ctrl-C, SIGTERM). */
export class InterruptedError extends VmError {
  constructor(message: string, hint: string) {
    super(message, {code: 'INTERRUPTED', exit: 'interrupted', hint})
  }
}

function whenAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal === undefined) return
    if (signal.aborted) reject(new Error('aborted'))
    else signal.addEventListener('abort', () => reject(new Error('aborted')), {once: true})
  })
}

function upResult(record: MachineRecord, fields: Pick<UpResult, 'alreadyRunning' | 'bootMs' | 'created' | 'provisioned'>): UpResult {
  const ssh = record.ssh
  return {
    name: record.name,
    state: 'running',
    box: {name: record.box.name, version: record.box.version},
    accel: record.accel,
    ssh: ssh === undefined ? undefined : {host: ssh.host, port: ssh.port, user: ssh.user},
    ...fields,
  }
}

/**
 * Runs every unfinished stage of a boot (stages.ts), recording each as it finishes: SSH (the
 * host key recorded), the insecure key replaced, guest networks, synced folders, provisioners.
 * A fresh boot runs them all; a vm up that finds the machine running with stages left runs
 * those. A failure or interruption while SSH or the key is pending stops the machine: the
 * box's insecure key must not stay trusted. Later stages leave it running, to be finished by
 * the next vm up.
 */
async function finishBoot(boot: Boot, continued = false): Promise<UpResult> {
  const signal = boot.options.interrupt?.signal
  const todo = unfinishedStages(boot.record)
  boot.record = {...boot.record, pending: todo}
  let connecting = todo.includes('ssh') || todo.includes('key')
  let bootMs: number | undefined
  let provisioned: string[] = []
  // A guest continued from a saved state or snapshot: no shared SSH connection from before may be reused.
  if (continued) await closeMaster(boot.record.id)
  const stages = async (): Promise<void> => {
    // A guest that continues where it was saved: the login that finds SSH ready sets its clock and mounts its folders.
    if (connecting) bootMs = continued ? await connectContinuedGuest(boot) : await connectToGuest(boot)
    connecting = false
    await waitForCloudInit(boot)
    provisioned = await convergeGuest(boot)
  }
  try {
    await Promise.race([stages(), whenAborted(signal)])
  } catch (error) {
    const {record} = boot
    const interrupted = signal?.aborted === true
    if (connecting || firstBootUnfinished(record)) {
      // Do not leave a machine that never came up (or still trusts the insecure key) running.
      await stopUnfinished(boot, record)
      if (interrupted)
        throw new InterruptedError(
          `Interrupted: machine ${record.name} had not finished booting, so vm stopped it`,
          `Run "vm up ${record.name}" to boot it again.`,
        )
      throw error
    }
    if (interrupted) {
      throw new InterruptedError(
        `Interrupted: machine ${record.name} is running, but its boot did not finish (${describeStages(record.pending ?? [])})`,
        `Run "vm up ${record.name}" to finish it.`,
      )
    }
    throw error
  }
  return upResult(boot.record, {alreadyRunning: false, created: boot.created, bootMs, provisioned})
}

/** A machine asked (by --provider) to run on another engine than the one it was created with. */
export function refuseEngineSwitch(existing: MachineRecord, wanted: string | undefined): void {
  const own = existing.driver ?? DEFAULT_DRIVER
  if (wanted === undefined || wanted === own) return
  throw new UserError(`Machine ${existing.name} was created with the ${own} engine; it cannot be started with ${wanted}`, {
    code: 'ENGINE_SWITCH',
    hint: `A machine keeps its engine. Run "vm up ${existing.name}" without --provider, or "vm destroy ${existing.name}" first to create it again with ${wanted}.`,
  })
}

/** Boots one machine (creating it first when needed) and waits until SSH answers; `guest` is how it talks SSH. */
export async function upMachine(
  projectDir: string,
  config: MachineConfig,
  events: MachineEvents,
  options: UpOptions = {},
  guest: GuestAccess = openSsh,
): Promise<UpResult> {
  const paths = machinePaths(projectDir, config.name)
  // Nothing of a machine that could not be created stays behind (a missing box, say).
  const newDirs = missingDirs(paths.dir)
  let removeNewDirs = false
  const unlock = await lockMachine(paths.lock, config.name)
  let boot: Boot | undefined
  try {
    const {status, record: found, unreadable} = await inspectMachine(projectDir, config.name)
    if (unreadable !== undefined) throw unreadable
    const running = status.state === 'running'
    const saved = status.state === 'saved'
    const existing = found === undefined ? undefined : await adoptMovedProject(found, projectDir, paths, running, events.warn)
    // A new machine gets the engine --provider names, else the Vmfile's provider; a machine keeps the engine it was created with.
    if (existing !== undefined) refuseEngineSwitch(existing, options.driver)
    const driver = await (existing === undefined ? driverNamed(options.driver ?? config.provider) : driverOf(existing))
    const context = {projectDir, config, paths, driver, options, events, guest}
    // What the engine cannot do of this Vmfile is an error before anything is made or started.
    removeNewDirs = existing === undefined
    const problems = driver.validate(config)
    if (problems.length > 0) throw engineProblemsError(projectDir, problems)
    foldersFor(driver, config.syncedFolders, config)
    removeNewDirs = false
    // A suspended machine resumes; a restore may ask to continue from a snapshot.
    const from = saved ? ({kind: 'saved'} as const) : options.from
    if (from?.kind === 'saved') suspendSupport(driver, config.name)
    if (from?.kind === 'snapshot') snapshotSupport(driver, config.name)
    if (running && existing !== undefined) {
      const left = unfinishedStages(existing)
      if (left.length > 0) {
        events.info(`the last boot of this machine did not finish; finishing it (${describeStages(left)})`)
        boot = {...context, record: existing, created: false, release: options.interrupt?.hold()}
        return await finishBoot(boot)
      }
      events.info(`already running (SSH on ${existing.ssh?.host}:${existing.ssh?.port})`)
      if (bootRelevant(existing.config) !== bootRelevant(config))
        events.warn('the Vmfile changed since this machine booted; run "vm reload" to apply the changes.')
      const provisioned = provisioningForced(context) ? await provisionAfterBoot({...context, record: existing, created: false}) : []
      return upResult(existing, {alreadyRunning: true, created: false, bootMs: undefined, provisioned})
    }
    let record: MachineRecord
    if (existing === undefined) {
      try {
        record = await createMachine(projectDir, config, paths, driver, events)
      } catch (error) {
        await clearMachineDir(paths)
        removeNewDirs = true
        throw error
      }
    } else record = existing
    const created = existing === undefined
    if (!created && bootRelevant(record.config) !== bootRelevant(config)) {
      if (options.applyConfig === true && from === undefined) {
        // The box stays pinned; everything else follows the Vmfile from this boot on.
        record = {...record, config: {...config, box: record.config.box, boxVersion: record.config.boxVersion}}
        events.info('applying the changed Vmfile settings')
      } else {
        events.warn(
          'the Vmfile changed since this machine last booted; the recorded settings are used. Run "vm reload" to apply the changes.',
        )
      }
    }
    if (status.state === 'aborted') events.warn('the machine was not shut down cleanly last time (aborted); booting it again')
    if (from?.kind === 'saved') events.info('resuming from the saved state')
    if (from?.kind === 'snapshot') events.info(`continuing from snapshot ${from.name}`)
    boot = {...context, options: {...options, from}, record, created}
    await bootMachine(boot)
    return await finishBoot(boot, from !== undefined)
  } finally {
    boot?.release?.()
    await unlock()
    if (removeNewDirs) for (const dir of newDirs) await rmdir(dir).catch(() => undefined)
  }
}
