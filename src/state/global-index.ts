import {existsSync, readFileSync} from 'node:fs'
import {mkdir, readFile, rename} from 'node:fs/promises'
import path from 'node:path'

import {writeFileAtomic} from './atomic-file.js'
import {acquireFileLock} from './file-lock.js'
import {machineId, machinePaths} from './machine-files.js'
import {vmPaths} from './paths.js'
import {reportWarning} from './warnings.js'

/** One machine of some project on this host. */
export interface IndexEntry {
  id: string
  name: string
  projectDir: string
}

function indexFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(vmPaths(env).data, 'machines.json')
}

/** An entry as stored; one without an id gets the id its project and name give. */
function toEntry(value: unknown): IndexEntry | undefined {
  const entry = value as Partial<IndexEntry> | null
  if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string' || typeof entry.projectDir !== 'string')
    return undefined
  const id = typeof entry.id === 'string' ? entry.id : machineId(entry.projectDir, entry.name)
  return {id, name: entry.name, projectDir: entry.projectDir}
}

type Loaded = {machines: IndexEntry[]; corrupt: false} | {machines: IndexEntry[]; corrupt: true; reason: string}

/** The index's text as stored, parsed: of the wrong shape is corrupt, never empty in silence. */
function parse(text: string): Loaded {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    return {machines: [], corrupt: true, reason: `not valid JSON (${(error as Error).message})`}
  }
  const machines = (data as {machines?: unknown} | null)?.machines
  if (!Array.isArray(machines)) return {machines: [], corrupt: true, reason: 'it has no "machines" list'}
  // Entries that are not machines are dropped; the others are kept.
  return {machines: machines.flatMap((entry) => toEntry(entry) ?? []), corrupt: false}
}

/** The index as stored: absent is empty; unreadable or of the wrong shape is corrupt. */
async function load(file: string): Promise<Loaded> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {machines: [], corrupt: false}
    return {machines: [], corrupt: true, reason: (error as Error).message}
  }
  return parse(text)
}

async function save(file: string, machines: IndexEntry[]): Promise<void> {
  await mkdir(path.dirname(file), {recursive: true, mode: 0o700})
  await writeFileAtomic(file, `${JSON.stringify({machines}, null, 2)}\n`)
}

/**
 * One update of the index at a time across every vm process on this host (a waiting lock
 * beside the file), each reading the index afresh under the lock. A corrupt index is moved
 * aside (machines.json.corrupt-TIMESTAMP), with a warning naming it, before a new one is written.
 */
async function update(env: NodeJS.ProcessEnv, change: (machines: IndexEntry[]) => IndexEntry[] | undefined): Promise<void> {
  const file = indexFile(env)
  const release = await acquireFileLock(`${file}.lock`)
  try {
    const loaded = await load(file)
    if (loaded.corrupt) {
      const aside = `${file}.corrupt-${new Date().toISOString().replaceAll(':', '-')}`
      await rename(file, aside)
      reportWarning(
        `the machine index ${file} was unreadable (${loaded.reason}); it was kept as ${aside} and a new index started. ` +
          'Machines it listed reappear in "vm global-status" after their next "vm up".',
      )
    }
    const changed = change(loaded.machines)
    if (changed !== undefined || loaded.corrupt) await save(file, changed ?? loaded.machines)
  } finally {
    await release()
  }
}

/** Whether the entry's project still has the machine's record. */
export function entryExists(entry: IndexEntry): boolean {
  return existsSync(machinePaths(entry.projectDir, entry.name).record)
}

export function addToIndex(entry: IndexEntry, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return update(env, (machines) => [...machines.filter((other) => other.id !== entry.id), entry])
}

export function removeFromIndex(id: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return update(env, (machines) => (machines.some((entry) => entry.id === id) ? machines.filter((entry) => entry.id !== id) : undefined))
}

/**
 * The entries of the index as they are now, without the liveness check. `corrupt` says the
 * index could not be read (a warning was printed): callers that decide something from it
 * must not take the empty list for "no machines".
 */
export async function readIndex(env: NodeJS.ProcessEnv = process.env): Promise<{machines: IndexEntry[]; corrupt: boolean}> {
  const file = indexFile(env)
  const loaded = await load(file)
  if (loaded.corrupt)
    reportWarning(
      `the machine index ${file} is unreadable (${loaded.reason}); machines listed only there are not seen. It is kept aside at the next "vm up".`,
    )
  return {machines: loaded.machines, corrupt: loaded.corrupt}
}

/**
 * Every machine of every project on this host. The index repairs itself: entries whose
 * project directory or machine record has gone are dropped (and, with `prune`, saved).
 */
export async function listIndex(
  options: {prune?: boolean} = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<{live: IndexEntry[]; gone: IndexEntry[]}> {
  const {machines} = await readIndex(env)
  const live = machines.filter((entry) => entryExists(entry))
  const gone = machines.filter((entry) => !live.includes(entry))
  if (options.prune === true && gone.length > 0) {
    const goneIds = new Set(gone.map((entry) => entry.id))
    // Under the lock, from the index as it is then: a machine added meanwhile stays.
    await update(env, (current) => current.filter((entry) => !goneIds.has(entry.id) || entryExists(entry)))
  }
  return {live, gone}
}

/**
 * The live entries of the index, read synchronously (machine selection by id happens while a
 * command resolves its arguments). An unreadable index gives none, with a warning.
 */
export function readLiveIndexSync(env: NodeJS.ProcessEnv = process.env): IndexEntry[] {
  const file = indexFile(env)
  let loaded: Loaded
  try {
    loaded = parse(readFileSync(file, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    loaded = {machines: [], corrupt: true, reason: (error as Error).message}
  }
  if (loaded.corrupt) reportWarning(`the machine index ${file} is unreadable (${loaded.reason}); machine ids cannot be looked up.`)
  return loaded.machines.filter((entry) => entryExists(entry))
}
