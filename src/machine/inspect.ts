import {readTail} from '../ssh/wait.js'
import {machinePaths} from '../state/machine-files.js'
import {deriveState, type MachineState} from '../state/machine-state.js'
import {findMachineProcess, type MachineProcess} from '../state/process-check.js'
import {projectMoved} from './moved.js'
import {configuredNics, type NicStatus} from './networks.js'
import {readRecord, RecordUnreadableError, type MachineRecord} from './record.js'
import {describeStages, unfinishedStages} from './stages.js'

export interface MachineStatus {
  name: string
  state: MachineState
  pid: number | undefined
  box: {name: string; version: string} | undefined
  accel: string | undefined
  ssh: {host: string; port: number; user: string} | undefined
  vnc: string | undefined
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
  /** The machine's live QEMU, if any (found through the pidfile and overlay in its own directory). */
  process: MachineProcess | undefined
}

/** A machine's status, derived from its files and the process table every time. */
export async function inspectMachine(projectDir: string, name: string): Promise<Inspection> {
  const paths = machinePaths(projectDir, name)
  let record: MachineRecord | undefined
  let unreadable: RecordUnreadableError | undefined
  try {
    record = await readRecord(paths.record)
  } catch (error) {
    if (!(error instanceof RecordUnreadableError)) throw error
    unreadable = error
  }
  const found = findMachineProcess(paths.process)
  const base = {name, box: undefined, accel: undefined, ssh: undefined, vnc: undefined, networks: undefined, projectDir}
  if (unreadable !== undefined) {
    const qemu = found === undefined ? 'its QEMU is not running' : `its QEMU is running (pid ${found.pid})`
    return {
      record: undefined,
      unreadable,
      process: found,
      status: {...base, state: 'unknown', pid: found?.pid, problem: `${unreadable.message}; ${qemu}`},
    }
  }
  const alive = record !== undefined && found !== undefined
  const state = deriveState({
    created: record !== undefined,
    processAlive: alive,
    lastRecorded: record?.lastState,
    serialTail: record !== undefined && !alive && record.lastState === 'running' ? await readTail(paths.serialLog, 30) : '',
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
    process: running ? found : undefined,
    status: {
      ...base,
      state,
      pid: running ? found?.pid : undefined,
      box: record === undefined ? undefined : {name: record.box.name, version: record.box.version},
      accel: running ? record?.accel : undefined,
      ssh: running ? record?.ssh : undefined,
      vnc: running && record?.vncDisplay !== undefined ? `127.0.0.1:${5900 + record.vncDisplay}` : undefined,
      networks: running && record !== undefined ? (record.nics ?? configuredNics(record)) : undefined,
      problem: problems.length === 0 ? undefined : problems.join('; '),
    },
  }
}
