import {existsSync} from 'node:fs'
import {mkdir, readdir, readFile, rm, rmdir} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {acquireFileLock} from '../state/file-lock.js'
import {boxDir, boxesRoot, METADATA_FILE, type BoxKey} from './store.js'

/**
 * The store's own account of which machines use a box: one file per machine,
 * `<boxes>/.users/<name>/<version>/<architecture>/<provider>/<machine id>.json`, holding the
 * machine's name, project directory and overlays. It is written before the machine's overlay
 * exists and removed by destroy, so whether a box is in use never depends on the global index.
 * The files sit beside the boxes, not inside them, so that no box archive can plant or block one.
 *
 * Writing a reference, and removing or replacing a box, happen under one lock of the store:
 * a box cannot disappear between the check and the creation of an overlay on it.
 */
export const USERS_DIR = '.users'
const STORE_LOCK = '.store.lock'
const MACHINE_ID = /^[0-9a-f]{16}$/

export interface BoxReference {
  /** The machine's id (machine.json "id"), also the file's name. */
  id: string
  name: string
  projectDir: string
  /** The machine's overlays, backed by the box's disks. */
  overlays: string[]
  createdAt: string
}

/** A reference file as found: parsed, or unreadable (then it still counts: someone wrote it). */
export type FoundReference = {file: string; reference: BoxReference} | {file: string; id: string; problem: string}

export function referencesDir(key: BoxKey, root = boxesRoot()): string {
  const top = path.join(root, USERS_DIR)
  const dir = path.join(top, path.relative(root, boxDir(key, root)))
  // A key read from a machine record must not lead outside the references.
  if (!dir.startsWith(`${top}${path.sep}`))
    throw new UserError(`Box ${JSON.stringify(key.name)} ${JSON.stringify(key.version)} is not a valid box key`)
  return dir
}

/** Runs `task` holding the store's lock (waiting for another vm process that holds it). */
export async function withStoreLock<T>(root: string, task: () => Promise<T>): Promise<T> {
  await mkdir(root, {recursive: true})
  const release = await acquireFileLock(path.join(root, STORE_LOCK))
  try {
    return await task()
  } finally {
    await release()
  }
}

function parseReference(text: string, id: string): BoxReference {
  const data = JSON.parse(text) as Partial<BoxReference> | null
  if (
    typeof data?.name !== 'string' ||
    typeof data.projectDir !== 'string' ||
    !path.isAbsolute(data.projectDir) ||
    !Array.isArray(data.overlays) ||
    !data.overlays.every((overlay) => typeof overlay === 'string')
  )
    throw new Error('it does not name a machine, its absolute project directory and its overlays')
  return {id, name: data.name, projectDir: data.projectDir, overlays: data.overlays, createdAt: String(data.createdAt ?? '')}
}

export async function readBoxReferences(key: BoxKey, root = boxesRoot()): Promise<FoundReference[]> {
  const dir = referencesDir(key, root)
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const found: FoundReference[] = []
  for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
    const file = path.join(dir, name)
    const id = name.slice(0, -'.json'.length)
    try {
      found.push({file, reference: parseReference(await readFile(file, 'utf8'), id)})
    } catch (error) {
      found.push({file, id, problem: (error as Error).message})
    }
  }
  return found
}

export async function writeBoxReference(key: BoxKey, reference: BoxReference, root = boxesRoot()): Promise<void> {
  if (!MACHINE_ID.test(reference.id)) throw new Error(`"${reference.id}" is not a machine id`)
  const dir = referencesDir(key, root)
  await mkdir(dir, {recursive: true, mode: 0o700})
  const {id: _id, ...content} = reference
  await writeFileAtomic(path.join(dir, `${reference.id}.json`), `${JSON.stringify(content, null, 2)}\n`)
}

/** Removes one machine's reference and the directories that leaves empty. */
export async function deleteBoxReference(key: BoxKey, id: string, root = boxesRoot()): Promise<void> {
  if (!MACHINE_ID.test(id)) return
  const dir = referencesDir(key, root)
  await rm(path.join(dir, `${id}.json`), {force: true})
  await removeEmptyParents(dir, path.join(root, USERS_DIR))
}

/** Removes a box's whole reference directory (the box is gone and none of them counts any more). */
export async function deleteAllBoxReferences(key: BoxKey, root = boxesRoot()): Promise<void> {
  const dir = referencesDir(key, root)
  await rm(dir, {recursive: true, force: true})
  await removeEmptyParents(path.dirname(dir), path.join(root, USERS_DIR))
}

async function removeEmptyParents(dir: string, top: string): Promise<void> {
  for (let current = dir; current.startsWith(top); current = path.dirname(current)) {
    try {
      await rmdir(current)
    } catch {
      return
    }
    if (current === top) return
  }
}

/**
 * Records in the store that machine `reference` uses box `key`, then runs `createOverlays`,
 * all under the store's lock: a `vm box remove` either sees the reference or has removed
 * the box before (and then this fails, saying so). If `createOverlays` fails, the reference goes.
 */
export async function recordBoxUse(
  key: BoxKey,
  reference: Omit<BoxReference, 'createdAt'>,
  createOverlays: () => Promise<void>,
  root = boxesRoot(),
): Promise<void> {
  await withStoreLock(root, async () => {
    if (!existsSync(path.join(boxDir(key, root), METADATA_FILE))) {
      throw new UserError(`Box ${key.name} ${key.version} was removed from the store while machine ${reference.name} was being created`, {
        code: 'BOX_NOT_FOUND',
        hint: 'Run "vm up" again: it adds the box again if it has to.',
      })
    }
    await writeBoxReference(key, {...reference, createdAt: new Date().toISOString()}, root)
    try {
      await createOverlays()
    } catch (error) {
      await deleteBoxReference(key, reference.id, root)
      throw error
    }
  })
}

/** Destroy's part: the machine no longer uses its box. Missing references are fine. */
export async function forgetBoxUse(key: Partial<BoxKey> | undefined, id: string, root = boxesRoot()): Promise<void> {
  if (typeof key?.name !== 'string' || typeof key.version !== 'string') return
  if (typeof key.architecture !== 'string' || typeof key.provider !== 'string') return
  await deleteBoxReference(key as BoxKey, id, root)
}

/** Whether any box in the store has a reference from machine `id` (a live, moved or stale one). */
export async function machineIdReferenced(id: string, root = boxesRoot()): Promise<boolean> {
  // <name...>/<version>/<architecture>/<provider>/<id>.json; names may add levels (org/box).
  const visit = async (dir: string, depth: number): Promise<boolean> => {
    if (depth > 8) return false
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    if (entries.some((entry) => entry.isFile() && entry.name === `${id}.json`)) return true
    for (const entry of entries) if (entry.isDirectory() && (await visit(path.join(dir, entry.name), depth + 1))) return true
    return false
  }
  return visit(path.join(root, USERS_DIR), 0)
}
