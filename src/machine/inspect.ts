import {stat} from 'node:fs/promises'
import type {EngineState, MachineDriver} from '../driver/driver.js'
import {driverOf} from '../driver/registry.js'
import {UserError} from '../errors/errors.js'
import {machinePaths} from '../state/machine-files.js'
import {deriveState, type MachineState} from '../state/machine-state.js'
import {projectMoved} from './moved.js'
import {machineHostname} from './hostname.js'
import {configuredNics, type NicStatus} from './networks.js'
import {lostRecord, readRecord, RecordUnreadableError, type MachineRecord} from './record.js'
import {describeStages, unfinishedStages} from './stages.js'

export interface MachineStatus {
  name: string
  state: MachineState
  pid: number | undefined
  box: {name: string; version: string} | undefined
  accel: string | undefined
  ssh: {host: string; port: number; user: string} | undefined
  vnc: string | undefined
  /** The guest's host name (the Vmfile's hostname, else the machine's name made one), once created. */
  hostname?: string | undefined
  /** The NICs, with the addresses the guest reported (running machines only). */
  networks: NicStatus[] | undefined
  projectDir: string
  /** What is wrong, when something is: an unreadable record, an unfinished boot, a moved project. */
  problem?: string | undefined
}

export interface Inspection {
  status: MachineStatus
  record: MachineRecord | undefined
  /** Set when machine.json exists but cannot be used (then `record` is undefined, state unknown). */
  unreadable?: RecordUnreadableError | undefined
  /** What the machine's engine says about it, asked afresh. */
  engine: EngineState
}

export interface InspectOptions {
  /**
   * When the engine cannot say how the machine is (its libvirt host cannot be reached, say):
   * report the machine as unknown with the engine's error as its problem, instead of throwing.
   * For listings (status, global-status), where one machine must not hide the others.
   */
  engineFailure?: 'report' | 'throw'
}

/** A machine's status, derived from its files and the process table every time. */
export async function inspectMachine(projectDir: string, name: string, options: InspectOptions = {}): Promise<Inspection> {
  const paths = machinePaths(projectDir, name)
  let record: MachineRecord | undefined
  let unreadable: RecordUnreadableError | undefined
  try {
    record = await readRecord(paths.record)
  } catch (error) {
    if (!(error instanceof RecordUnreadableError)) throw error
    unreadable = error
  }
  if (record === undefined && unreadable === undefined) unreadable = await lostRecord(paths.record, paths.lock)
  // A machine with no directory at all has nothing an engine could be running: no engine is
  // loaded to say so. An unreadable record names no engine: the default one is asked.
  const nothing = record === undefined && unreadable === undefined && !(await exists(paths.dir))
  const driver = nothing ? undefined : await driverOf(record)
  const base = {name, box: undefined, accel: undefined, ssh: undefined, vnc: undefined, networks: undefined, projectDir}
  let engine: EngineState = {alive: false, cleanPowerOff: false}
  try {
    if (driver !== undefined) engine = await driver.inspect({name, dir: paths.dir, id: record?.id, record})
  } catch (error) {
    if (options.engineFailure !== 'report' || record === undefined) throw error
    // What the machine is cannot be known now; what vm knows of it still is.
    return {
      record,
      engine,
      status: {
        ...base,
        state: 'unknown',
        pid: undefined,
        box: {name: record.box.name, version: record.box.version},
        hostname: machineHostname(record.config),
        problem: error instanceof Error ? error.message : String(error),
      },
    }
  }
  if (unreadable !== undefined) {
    const qemu = !engine.alive ? `its ${driver!.displayName} is not running` : `its ${driver!.displayName} is running (pid ${engine.pid})`
    return {
      record: undefined,
      unreadable,
      engine,
      status: {...base, state: 'unknown', pid: engine.pid, problem: `${unreadable.message}; ${qemu}`},
    }
  }
  const state = deriveState({
    created: record !== undefined,
    alive: record !== undefined && engine.alive,
    lastRecorded: record?.lastState,
    cleanPowerOff: engine.cleanPowerOff,
    saved: engine.saved,
  })
  const running = state === 'running'
  const problems: string[] = []
  if (record !== undefined && running) {
    const left = unfinishedStages(record)
    if (left.length > 0) problems.push(`boot not finished (${describeStages(left)}): run "vm up ${name}"`)
  }
  if (record !== undefined && projectMoved(record, projectDir))
    problems.push(`the project moved here from ${record.projectDir}; "vm up" or "vm halt" re-registers it`)
  return {
    record,
    engine,
    status: {
      ...base,
      state,
      pid: running ? engine.pid : undefined,
      box: record === undefined ? undefined : {name: record.box.name, version: record.box.version},
      hostname: record === undefined ? undefined : machineHostname(record.config),
      accel: running ? record?.accel : undefined,
      ssh: running ? record?.ssh : undefined,
      vnc: running ? engine.vnc : undefined,
      networks: running && record !== undefined ? (record.nics ?? configuredNics(record, driver?.natAddress)) : undefined,
      problem: problems.length === 0 ? undefined : problems.join('; '),
    },
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  )
}

/**
 * A machine a command is about to act on: its record, state and engine, refused clearly when its
 * record cannot be read or it was never created. `after` ends the hint ("Run "vm up NAME" first…").
 */
export async function createdMachine(
  projectDir: string,
  name: string,
  after = '',
): Promise<{status: MachineStatus; record: MachineRecord; driver: MachineDriver}> {
  const {status, record, unreadable} = await inspectMachine(projectDir, name)
  if (unreadable !== undefined) throw unreadable
  if (record === undefined)
    throw new UserError(`Machine ${name} is not created`, {code: 'NOT_CREATED', hint: `Run "vm up ${name}" first${after}.`})
  return {status, record, driver: await driverOf(record)}
}
