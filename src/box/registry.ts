import {existsSync, readFileSync, statSync} from 'node:fs'
import path from 'node:path'
import {pathToFileURL} from 'node:url'

import {UserError} from '../errors/errors.js'
import {packageRoot} from '../state/package-root.js'
import {vmPaths} from '../state/paths.js'
import {parseCatalog, type Catalog} from './catalog.js'
import {isHttpUrl, type HttpOptions} from './download.js'
import {fetchText, NotFound} from './fetch.js'

/**
 * Registries turn a short name (org/box) into a catalog. They are base URLs or directories,
 * from VM_BOX_REGISTRIES (comma-separated) then `<config dir>/registries.json`
 * ({"registries": ["https://boxes.example.com", "/srv/boxes"]}), then the boxes shipped
 * with vm (boxes/dist in the package) when present.
 */
export const REGISTRIES_FILE = 'registries.json'
const SHORT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\/[A-Za-z0-9_][A-Za-z0-9_.-]*$/

export function isShortName(source: string): boolean {
  return SHORT_NAME.test(source)
}

export function configuredRegistries(env: NodeJS.ProcessEnv = process.env): string[] {
  const bases: string[] = []
  for (const entry of (env.VM_BOX_REGISTRIES ?? '').split(',')) if (entry.trim() !== '') bases.push(entry.trim())
  const file = path.join(vmPaths(env).config, REGISTRIES_FILE)
  if (existsSync(file)) {
    let data: unknown
    try {
      data = JSON.parse(readFileSync(file, 'utf8'))
    } catch (error) {
      throw new UserError(`${file} is not valid JSON: ${(error as Error).message}`, {
        code: 'CONFIG_INVALID',
        hint: 'It should look like {"registries": ["https://boxes.example.com"]}.',
      })
    }
    const list = Array.isArray(data) ? data : (data as {registries?: unknown}).registries
    if (Array.isArray(list)) for (const entry of list) if (typeof entry === 'string' && entry !== '') bases.push(entry)
  }
  if (env.VM_NO_BUILTIN_REGISTRY !== '1') {
    try {
      const shipped = path.join(packageRoot(), 'boxes', 'dist')
      if (existsSync(shipped) && statSync(shipped).isDirectory()) bases.push(shipped)
    } catch {
      // Not running from a package checkout: no shipped boxes.
    }
  }
  return [...new Set(bases)]
}

/** The catalog URLs tried for `name` under one registry base, in order. */
export function candidateUrls(base: string, name: string): string[] {
  const root = isHttpUrl(base) || base.startsWith('file:') ? base : pathToFileURL(path.resolve(base)).href
  const slash = root.endsWith('/') ? root : `${root}/`
  const local = root.startsWith('file:')
  const urls = [`${slash}${name}.json`, `${slash}${name}`]
  if (!local) urls.unshift(`${slash}api/v2/vagrant/${name}`)
  return urls
}

/** Finds `name` (org/box) in the configured registries; the error lists every place tried. */
export async function lookupShortName(name: string, options: HttpOptions & {env?: NodeJS.ProcessEnv} = {}): Promise<Catalog> {
  const bases = configuredRegistries(options.env)
  const tried: string[] = []
  for (const base of bases) {
    for (const url of candidateUrls(base, name)) {
      try {
        const fetched = await fetchText(url, options)
        // Registries answer for the name asked; HCP's API calls the box "tag" and its short name "name".
        return {...parseCatalog(fetched.text, fetched.url), name}
      } catch (error) {
        if (options.signal?.aborted) throw error
        tried.push(`${url}: ${error instanceof NotFound ? 'not found' : (error as Error).message}`)
      }
    }
  }
  throw new UserError(
    `Box "${name}" was not found in ${bases.length === 0 ? 'any registry (none is configured)' : 'the configured registries'}`,
    {
      code: 'BOX_NOT_FOUND',
      details: tried.map((line) => `tried ${line}`),
      hint: `Give a URL or path to the box or its catalog, or add a registry: VM_BOX_REGISTRIES=https://host/boxes or ${path.join(vmPaths(options.env).config, REGISTRIES_FILE)}.`,
      data: {tried},
    },
  )
}
