import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'

import {readIndex} from '../state/global-index.js'
import {machinePaths} from '../state/machine-files.js'
import {boxesRoot, type BoxKey} from './store.js'
import {deleteBoxReference, readBoxReferences, writeBoxReference, type BoxReference} from './references.js'

/**
 * Which machines use which box. The store's references (references.ts) are the source: one per
 * machine, written before its overlay. Machines created before references existed are found
 * as before, through the global index and their machine.json, and get a reference when seen.
 * When vm cannot tell whether a referenced machine still exists (its project directory is
 * gone: moved or deleted?), the machine counts as a user and `unsure` says why.
 */
export interface BoxUser {
  machine: string
  projectDir: string
  box: BoxKey
  /** The machine's id, when known. */
  id?: string | undefined
  /** Where vm learned of the machine: the store's reference, or the global index. */
  source: 'reference' | 'index'
  /** Set when the machine may be gone but vm cannot be sure: why it still counts. */
  unsure?: string | undefined
}

/** Whether a machine's recorded box is this stored box (records without arch/provider match any). */
export function usesBox(user: {box: BoxKey}, key: BoxKey): boolean {
  return (
    user.box.name === key.name &&
    user.box.version === key.version &&
    (user.box.architecture === '' || user.box.architecture === key.architecture) &&
    (user.box.provider === '' || user.box.provider === key.provider)
  )
}

/** A user as one line of an error or a listing. */
export function describeUser(user: BoxUser): string {
  return user.unsure === undefined
    ? `machine "${user.machine}" in ${user.projectDir}`
    : `machine "${user.machine}" recorded in ${user.projectDir}: ${user.unsure}`
}

interface MachineOnDisk {
  id: string | undefined
  box: BoxKey | undefined
  /** How many disks (overlays) the machine has. */
  disks?: number
  /** The record exists but cannot be read. */
  problem?: string
}

/** A machine's record: undefined when absent. */
async function readMachine(projectDir: string, name: string): Promise<MachineOnDisk | undefined> {
  const file = machinePaths(projectDir, name).record
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    return {id: undefined, box: undefined, problem: `its record ${file} cannot be read (${code ?? (error as Error).message})`}
  }
  let record: {id?: unknown; box?: Partial<BoxKey> & {disks?: unknown}} | null
  try {
    record = JSON.parse(text) as typeof record
  } catch {
    return {id: undefined, box: undefined, problem: `its record ${file} is not valid JSON`}
  }
  const box = record?.box
  const id = typeof record?.id === 'string' ? record.id : undefined
  if (typeof box?.name !== 'string' || typeof box.version !== 'string')
    return {id, box: undefined, problem: `its record ${file} names no box`}
  const text2 = (value: unknown): string => (typeof value === 'string' ? value : '')
  return {
    id,
    box: {name: box.name, version: box.version, architecture: text2(box.architecture), provider: text2(box.provider)},
    disks: Array.isArray(box.disks) ? box.disks.length : 1,
  }
}

type Verdict = {state: 'user'; unsure?: string} | {state: 'stale'}

/**
 * Whether a reference's machine still uses the box. Only a project directory that is still
 * there without the machine (or with a machine re-created from another box) makes it stale;
 * a missing project directory may have moved, so that machine still counts.
 */
async function judge(reference: BoxReference, key: BoxKey): Promise<Verdict> {
  const machine = await readMachine(reference.projectDir, reference.name)
  if (machine !== undefined) {
    if (machine.problem !== undefined) return {state: 'user', unsure: machine.problem}
    return machine.box !== undefined && usesBox({box: machine.box}, key) ? {state: 'user'} : {state: 'stale'}
  }
  const overlay = reference.overlays.find((file) => existsSync(file))
  if (overlay !== undefined) return {state: 'user', unsure: `its disk ${overlay} is still there, without a machine record`}
  if (!existsSync(reference.projectDir))
    return {state: 'user', unsure: 'the project directory is gone (moved, or deleted without "vm destroy"?)'}
  return {state: 'stale'}
}

export interface UsersOptions {
  /**
   * Tidy the store while looking (only under the store's lock): delete references found
   * stale, and write one for each machine only the global index knew.
   */
  tidy?: boolean | undefined
}

/** What vm knows about box users on this host, read once: the global index's machines. */
export interface UsageSurvey {
  usersOf(key: BoxKey, options?: UsersOptions): Promise<BoxUser[]>
}

/** Reads the global index once (a corrupt one is reported there) for several usersOf calls. */
export async function surveyUsage(env: NodeJS.ProcessEnv = process.env, root = boxesRoot(env)): Promise<UsageSurvey> {
  const {machines} = await readIndex(env)
  const indexed: Array<{id: string; name: string; projectDir: string; box: BoxKey; disks: number}> = []
  for (const entry of machines) {
    const machine = await readMachine(entry.projectDir, entry.name)
    if (machine?.box === undefined) continue
    indexed.push({id: machine.id ?? entry.id, name: entry.name, projectDir: entry.projectDir, box: machine.box, disks: machine.disks ?? 1})
  }
  return {
    async usersOf(key, options = {}) {
      const users: BoxUser[] = []
      for (const found of await readBoxReferences(key, root)) {
        if ('problem' in found) {
          users.push({
            machine: '?',
            projectDir: found.file,
            box: key,
            id: found.id,
            source: 'reference',
            unsure: `unreadable reference (${found.problem})`,
          })
          continue
        }
        const {reference} = found
        const verdict = await judge(reference, key)
        if (verdict.state === 'stale') {
          if (options.tidy === true) await deleteBoxReference(key, reference.id, root)
          continue
        }
        users.push({
          machine: reference.name,
          projectDir: reference.projectDir,
          box: key,
          id: reference.id,
          source: 'reference',
          unsure: verdict.unsure,
        })
      }
      for (const machine of indexed) {
        if (!usesBox(machine, key)) continue
        const known = users.some(
          (user) => user.id === machine.id || (user.projectDir === machine.projectDir && user.machine === machine.name),
        )
        if (known) continue
        users.push({machine: machine.name, projectDir: machine.projectDir, box: key, id: machine.id, source: 'index'})
        if (options.tidy === true && /^[0-9a-f]{16}$/.test(machine.id)) {
          const paths = machinePaths(machine.projectDir, machine.name)
          // The disk files are named by the engine; machines in the index are the default engine's.
          const {driverNamed} = await import('../driver/registry.js')
          const overlays = (await driverNamed()).diskFiles(paths, machine.disks)
          await writeBoxReference(
            key,
            {id: machine.id, name: machine.name, projectDir: machine.projectDir, overlays, createdAt: new Date().toISOString()},
            root,
          )
        }
      }
      return users
    },
  }
}

/** The machines that use a stored box. */
export async function machinesUsing(key: BoxKey, env: NodeJS.ProcessEnv = process.env): Promise<BoxUser[]> {
  return (await surveyUsage(env)).usersOf(key)
}
