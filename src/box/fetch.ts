import {createHash} from 'node:crypto'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {UserError} from '../errors/errors.js'
import {vmPaths} from '../state/paths.js'
import {parseCatalog, type Catalog} from './catalog.js'
import {fsUserError, isFsError} from './fs-errors.js'
import {gotOptions, httpStatusError, isHttpUrl, type HttpOptions} from './download.js'

/** Small documents (catalogs) from http(s) or file URLs. */
export class NotFound extends Error {}

/** The text at `url` and the URL it finally came from (after redirects). Throws NotFound for 404/ENOENT. */
export async function fetchText(url: string, options: HttpOptions = {}): Promise<{text: string; url: string}> {
  if (!isHttpUrl(url)) {
    const file = url.startsWith('file:') ? fileURLToPath(url) : url
    try {
      return {text: await readFile(file, 'utf8'), url}
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw new NotFound(`${file}: no such file`)
      throw isFsError(error) ? fsUserError(error, 'read', file) : error
    }
  }
  const {default: got} = await import('got')
  const base = gotOptions(url, options)
  const response = await got(url, {
    ...base,
    headers: {...base.headers, accept: 'application/json'},
    retry: {limit: 2},
    timeout: {request: 60_000},
  })
  if (response.statusCode === 404) throw new NotFound(`${url} answered 404`)
  if (response.statusCode !== 200) throw httpStatusError(url, response.statusCode, response.statusMessage)
  return {text: response.body, url: response.url}
}

export interface FetchCatalogOptions extends HttpOptions {
  /** Reuse a copy fetched less than this long ago (the cache lives in the cache dir). */
  maxAgeMs?: number | undefined
  env?: NodeJS.ProcessEnv
}

interface CachedCatalog {
  url: string
  fetchedAt: number
  text: string
  finalUrl: string
}

function cacheFile(url: string, env: NodeJS.ProcessEnv): string {
  const key = createHash('sha256').update(url).digest('hex').slice(0, 32)
  return path.join(vmPaths(env).cache, 'catalogs', `${key}.json`)
}

/** Reads and parses a catalog, optionally through the one-hour cache used by `vm box outdated`. */
export async function fetchCatalog(url: string, options: FetchCatalogOptions = {}): Promise<Catalog> {
  const env = options.env ?? process.env
  const file = cacheFile(url, env)
  if (options.maxAgeMs !== undefined) {
    const cached = await readFile(file, 'utf8')
      .then((text) => JSON.parse(text) as CachedCatalog)
      .catch(() => undefined)
    if (cached?.url === url && Date.now() - cached.fetchedAt < options.maxAgeMs) return parseCatalog(cached.text, cached.finalUrl)
  }
  let fetched
  try {
    fetched = await fetchText(url, options)
  } catch (error) {
    if (error instanceof NotFound) {
      throw new UserError(`The box catalog ${url} does not exist (404)`, {
        code: 'CATALOG_NOT_FOUND',
        hint: 'Check the URL, or add the box again from where it is published now.',
      })
    }
    throw error
  }
  const catalog = parseCatalog(fetched.text, fetched.url)
  const entry: CachedCatalog = {url, fetchedAt: Date.now(), text: fetched.text, finalUrl: fetched.url}
  // The cache only saves a later fetch: failing to write it (a full disk) is not an error.
  const temp = `${file}.${process.pid}.tmp`
  try {
    await mkdir(path.dirname(file), {recursive: true})
    await writeFile(temp, JSON.stringify(entry))
    await rename(temp, file)
  } catch {
    await rm(temp, {force: true}).catch(() => undefined)
  }
  return catalog
}
