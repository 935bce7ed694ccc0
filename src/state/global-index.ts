import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {machinePaths} from './machine-files.js'
import {vmPaths} from './paths.js'

/** One machine of some project on this host. */
export interface IndexEntry {
  id: string
  name: string
  projectDir: string
}

function indexFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(vmPaths(env).data, 'machines.json')
}

async function load(file: string): Promise<IndexEntry[]> {
  try {
    const data = JSON.parse(await readFile(file, 'utf8')) as {machines?: IndexEntry[]}
    return Array.isArray(data.machines) ? data.machines : []
  } catch {
    return []
  }
}

let saves = 0

async function save(file: string, machines: IndexEntry[]): Promise<void> {
  await mkdir(path.dirname(file), {recursive: true})
  const temp = `${file}.${process.pid}.${++saves}.tmp`
  await writeFile(temp, `${JSON.stringify({machines}, null, 2)}\n`)
  await rename(temp, file)
}

/** Whether the entry's project still has the machine's record. */
export function entryExists(entry: IndexEntry, env: NodeJS.ProcessEnv = process.env): boolean {
  return existsSync(machinePaths(entry.projectDir, entry.name, env).record)
}

/** Index updates of this process, one at a time: machines started in parallel update it too. */
let queue: Promise<unknown> = Promise.resolve()

function serialized<T>(update: () => Promise<T>): Promise<T> {
  const next = queue.then(update, update)
  queue = next.catch(() => undefined)
  return next
}

export function addToIndex(entry: IndexEntry, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return serialized(async () => {
    const file = indexFile(env)
    const machines = (await load(file)).filter((other) => other.id !== entry.id)
    await save(file, [...machines, entry])
  })
}

export function removeFromIndex(id: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return serialized(async () => {
    const file = indexFile(env)
    const machines = await load(file)
    if (machines.some((entry) => entry.id === id))
      await save(
        file,
        machines.filter((entry) => entry.id !== id),
      )
  })
}

/**
 * Every machine of every project on this host. The index repairs itself: entries whose
 * project directory or machine record has gone are dropped (and, with `prune`, saved).
 */
export async function listIndex(
  options: {prune?: boolean} = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<{live: IndexEntry[]; gone: IndexEntry[]}> {
  const file = indexFile(env)
  const machines = await load(file)
  const live = machines.filter((entry) => entryExists(entry, env))
  const gone = machines.filter((entry) => !live.includes(entry))
  if (options.prune === true && gone.length > 0) await save(file, live)
  return {live, gone}
}
