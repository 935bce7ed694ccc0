import {existsSync, readFileSync, statSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {newestInCatalog, parseCatalog, toUrl} from './catalog.js'
import {isHttpUrl} from './download.js'
import {candidateUrls, configuredRegistries, isShortName, REGISTRIES_FILE} from './registry.js'
import {boxesRoot, findBox, hostArchitecture} from './store.js'
import {vmPaths} from '../state/paths.js'

/** What a machine asks of the box store (the Vmfile's box, box_version and box_url). */
export interface BoxRequest {
  machine: string
  box: string
  boxVersion?: string | undefined
  boxUrl?: string | undefined
}

/**
 * Whether `vm up` would find the box, answered without the network, the way up resolves it
 * (src/machine/box.ts): a stored version meeting box_version; else box_url; else, for a name
 * like org/box, the registries (a directory registry is read; an http one cannot be asked
 * offline and counts as able to answer); else the path or URL the box names.
 */
export async function boxIsReachable(request: BoxRequest, projectDir: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if ((await findBox(request.box, request.boxVersion, hostArchitecture(), {root: boxesRoot(env)})) !== undefined) return true
  if (request.boxUrl !== undefined) return true
  if (isShortName(request.box) && !existsSync(path.resolve(projectDir, request.box))) {
    for (const base of configuredRegistries(env)) {
      if (isHttpUrl(base)) return true
      for (const url of candidateUrls(base, request.box)) {
        const catalog = readLocalCatalog(url)
        // up uses the first catalog it can read, and fails when it offers no usable version.
        if (catalog !== undefined)
          return newestInCatalog(catalog, {constraint: request.boxVersion, architecture: hostArchitecture()}) !== undefined
      }
    }
    return false
  }
  let url: string
  try {
    url = toUrl(request.box, projectDir)
  } catch {
    return false
  }
  if (isHttpUrl(url)) return true
  return url.startsWith('file:') && existsSync(fileURLToPath(url))
}

function readLocalCatalog(url: string): ReturnType<typeof parseCatalog> | undefined {
  try {
    const file = fileURLToPath(url)
    if (!statSync(file).isFile()) return undefined
    return parseCatalog(readFileSync(file, 'utf8'), url)
  } catch {
    return undefined
  }
}

/**
 * A warning for every box `vm up` would not find (once per box, naming its machines), saying
 * how to add it. Not an error: the box may be added before the next up.
 */
export async function unreachableBoxWarnings(
  requests: readonly BoxRequest[],
  projectDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const byBox = new Map<string, BoxRequest[]>()
  for (const request of requests) {
    const key = JSON.stringify([request.box, request.boxVersion ?? null])
    byBox.set(key, [...(byBox.get(key) ?? []), request])
  }
  const warnings: string[] = []
  for (const group of byBox.values()) {
    const [first] = group
    if (first === undefined) continue
    const machines = group.map((request) => request.machine)
    try {
      if (await boxIsReachable(first, projectDir, env)) continue
    } catch (error) {
      // A broken registries.json: up would stop on the same error; say so, and go on.
      warnings.push(`cannot tell whether box ${first.box} can be found: ${(error as Error).message}`)
      continue
    }
    const version = first.boxVersion === undefined ? '' : ` (version ${first.boxVersion})`
    const registries = `VM_BOX_REGISTRIES or ${path.join(vmPaths(env).config, REGISTRIES_FILE)}`
    warnings.push(
      `box ${first.box}${version} of machine${machines.length === 1 ? '' : 's'} ${machines.join(', ')} is in no box store or registry, so "vm up" would fail: add it with "vm box add FILE-OR-URL --name ${first.box}", set box_url in the Vmfile, or add a registry that has it (${registries})`,
    )
  }
  return warnings
}
