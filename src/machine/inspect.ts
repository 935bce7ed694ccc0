import {readTail} from '../ssh/wait.js'
import {machinePaths} from '../state/machine-files.js'
import {deriveState, type MachineState} from '../state/machine-state.js'
import {isMachineProcess, readPidfile} from '../state/process-check.js'
import {configuredNics, type NicStatus} from './networks.js'
import {readRecord, type MachineRecord} from './record.js'

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
}

/** A machine's status, derived from its files and the process table every time. */
export async function inspectMachine(
  projectDir: string,
  name: string,
): Promise<{status: MachineStatus; record: MachineRecord | undefined}> {
  const paths = machinePaths(projectDir, name)
  const record = await readRecord(paths.record)
  const pid = readPidfile(paths.pid)
  const alive = record !== undefined && isMachineProcess(pid, paths.qmpSocket)
  const state = deriveState({
    created: record !== undefined,
    processAlive: alive,
    lastRecorded: record?.lastState,
    serialTail: record !== undefined && !alive && record.lastState === 'running' ? await readTail(paths.serialLog, 30) : '',
  })
  const running = state === 'running'
  return {
    record,
    status: {
      name,
      state,
      pid: running ? pid : undefined,
      box: record === undefined ? undefined : {name: record.box.name, version: record.box.version},
      accel: running ? record?.accel : undefined,
      ssh: running ? record?.ssh : undefined,
      vnc: running && record?.vncDisplay !== undefined ? `127.0.0.1:${5900 + record.vncDisplay}` : undefined,
      networks: running && record !== undefined ? (record.nics ?? configuredNics(record)) : undefined,
      projectDir,
    },
  }
}
