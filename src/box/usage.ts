import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {machineStateDir, vmPaths} from '../state/paths.js'
import type {BoxKey} from './store.js'

/**
 * Which machines use which box. Machines record their box in
 * `<project>/.vm/machines/<name>/machine.json` ({box: {name, version, architecture, provider}})
 * and are listed in `<data dir>/machines.json`. Missing or unreadable files count as no machine.
 */
export interface BoxUser {
  machine: string
  projectDir: string
  box: BoxKey
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'))
  } catch {
    return undefined
  }
}

/** Every machine on this host with the box it was created from. */
export async function listBoxUsers(env: NodeJS.ProcessEnv = process.env): Promise<BoxUser[]> {
  const index = (await readJson(path.join(vmPaths(env).data, 'machines.json'))) as
    {machines?: Array<{name?: unknown; projectDir?: unknown}>} | undefined
  const users: BoxUser[] = []
  for (const entry of Array.isArray(index?.machines) ? index.machines : []) {
    if (typeof entry?.name !== 'string' || typeof entry.projectDir !== 'string') continue
    const record = (await readJson(path.join(machineStateDir(entry.projectDir, entry.name), 'machine.json'))) as
      {box?: Partial<BoxKey>} | undefined
    const box = record?.box
    if (typeof box?.name !== 'string' || typeof box.version !== 'string') continue
    users.push({
      machine: entry.name,
      projectDir: entry.projectDir,
      box: {name: box.name, version: box.version, architecture: box.architecture ?? '', provider: box.provider ?? ''},
    })
  }
  return users
}

/** Whether a machine's recorded box is this stored box (records without arch/provider match any). */
export function usesBox(user: BoxUser, key: BoxKey): boolean {
  return (
    user.box.name === key.name &&
    user.box.version === key.version &&
    (user.box.architecture === '' || user.box.architecture === key.architecture) &&
    (user.box.provider === '' || user.box.provider === key.provider)
  )
}

/** The machines that use a stored box, as "name (project dir)" labels. */
export async function machinesUsing(key: BoxKey, env: NodeJS.ProcessEnv = process.env): Promise<BoxUser[]> {
  return (await listBoxUsers(env)).filter((user) => usesBox(user, key))
}
