import {createHash} from 'node:crypto'
import path from 'node:path'

import {machineStateDir} from './paths.js'

/**
 * The files every machine keeps, whatever its engine, by name, in one place (the engine's
 * own files are named by its driver, e.g. src/driver/qemu/files.ts). The machine's state is these files;
 * its status is derived from them and the process table, never cached.
 */
export const MachineFile = {
  /** The resolved config, box and choices recorded when the machine was created. */
  record: 'machine.json',
  privateKey: 'id_ed25519',
  knownHosts: 'known_hosts',
  lock: 'lock',
  /** The NoCloud seed of a machine of a cloud-image box (ISO 9660, label cidata). */
  cloudInitSeed: 'cidata.iso',
} as const

export interface MachinePaths {
  dir: string
  record: string
  privateKey: string
  knownHosts: string
  lock: string
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

export function machinePaths(projectDir: string, name: string): MachinePaths {
  const dir = machineStateDir(projectDir, name)
  const at = (file: string): string => path.join(dir, file)
  return {
    dir,
    record: at(MachineFile.record),
    privateKey: at(MachineFile.privateKey),
    knownHosts: at(MachineFile.knownHosts),
    lock: at(MachineFile.lock),
  }
}
