import {createHash} from 'node:crypto'
import path from 'node:path'

import {machineStateDir, vmPaths} from './paths.js'

/**
 * Every file a machine keeps, by name, in one place. The machine's state is these files;
 * its status is derived from them and the process table, never cached.
 */
export const MachineFile = {
  /** The resolved config, box and choices recorded when the machine was created. */
  record: 'machine.json',
  overlay: (index: number) => `disk${index}.qcow2`,
  pid: 'qemu.pid',
  serialLog: 'serial.log',
  qemuStderr: 'qemu.stderr',
  privateKey: 'id_ed25519',
  knownHosts: 'known_hosts',
  lock: 'lock',
} as const

export interface MachinePaths {
  dir: string
  record: string
  pid: string
  serialLog: string
  qemuStderr: string
  privateKey: string
  knownHosts: string
  lock: string
  /**
   * On a short path in the runtime directory (Unix socket paths are limited to 108 bytes), named
   * by the machine id. A running QEMU is asked for its own socket (process-check.ts) instead:
   * the runtime directory may differ between shells.
   */
  qmpSocket: string
  overlay(index: number): string
  /** What recognizes the machine's QEMU: files in its own state directory, not in the runtime one. */
  process: {pid: string; overlay: string}
}

/**
 * A short id for a new machine: a hash of its project directory and name. Once recorded, the
 * record's id is the machine's id, even when the project moves.
 */
export function machineId(projectDir: string, name: string): string {
  return createHash('sha256')
    .update(`${path.resolve(projectDir)}\0${name}`)
    .digest('hex')
    .slice(0, 16)
}

export function machinePaths(
  projectDir: string,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  id: string = machineId(projectDir, name),
): MachinePaths {
  const dir = machineStateDir(projectDir, name)
  const at = (file: string): string => path.join(dir, file)
  return {
    dir,
    record: at(MachineFile.record),
    pid: at(MachineFile.pid),
    serialLog: at(MachineFile.serialLog),
    qemuStderr: at(MachineFile.qemuStderr),
    privateKey: at(MachineFile.privateKey),
    knownHosts: at(MachineFile.knownHosts),
    lock: at(MachineFile.lock),
    qmpSocket: path.join(vmPaths(env).runtime, `${id}.qmp`),
    overlay: (index) => at(MachineFile.overlay(index)),
    process: {pid: at(MachineFile.pid), overlay: at(MachineFile.overlay(0))},
  }
}
