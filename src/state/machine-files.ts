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
  /** On a short path in the runtime directory: Unix socket paths are limited to 108 bytes. */
  qmpSocket: string
  overlay(index: number): string
}

/** A short, stable id for a machine: a hash of its project directory and name. */
export function machineId(projectDir: string, name: string): string {
  return createHash('sha256')
    .update(`${path.resolve(projectDir)}\0${name}`)
    .digest('hex')
    .slice(0, 16)
}

export function machinePaths(projectDir: string, name: string, env: NodeJS.ProcessEnv = process.env): MachinePaths {
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
    qmpSocket: path.join(vmPaths(env).runtime, `${machineId(projectDir, name)}.qmp`),
    overlay: (index) => at(MachineFile.overlay(index)),
  }
}
