import {loadProject} from '../vmfile/index.js'
import {addBox, type AddBoxOptions} from './add.js'
import {newestInCatalog, toUrl, type Catalog} from './catalog.js'
import type {HttpOptions} from './download.js'
import {fetchCatalog} from './fetch.js'
import {isShortName, lookupShortName} from './registry.js'
import {boxesRoot, findBox, hostArchitecture, listBoxes, type StoredBox} from './store.js'
import {compareVersions} from './version.js'
import {formatOciReference, isOciSource, parseOciReference} from './oci/reference.js'
import {newestTag} from './oci/tags.js'
import {loadAuthorizations} from './credentials.js'

/** How long `vm box outdated` trusts a catalog it fetched (the cache lives in the cache dir). */
export const CATALOG_MAX_AGE_MS = 60 * 60 * 1000

export interface OutdatedEntry {
  name: string
  constraint: string | undefined
  architecture: string
  provider: string | undefined
  /** The stored version machines would use; undefined when none is stored. */
  installed: string | undefined
  /** The newest version the catalog offers within the constraint. */
  latest: string | undefined
  outdated: boolean
  catalogUrl: string | undefined
  /** Why the catalog could not be checked. */
  problem: string | undefined
}

export interface OutdatedOptions extends HttpOptions {
  cwd: string
  global?: boolean | undefined
  /** Ignore the one-hour catalog cache. */
  refresh?: boolean | undefined
  env?: NodeJS.ProcessEnv | undefined
}

interface Wanted {
  name: string
  constraint: string | undefined
  boxUrl: string | undefined
  stored: StoredBox | undefined
  architecture: string
  provider: string | undefined
}

async function wantedBoxes(options: OutdatedOptions): Promise<Wanted[]> {
  const root = boxesRoot(options.env)
  if (options.global === true) {
    const seen = new Set<string>()
    const wanted: Wanted[] = []
    for (const box of await listBoxes(root)) {
      const group = `${box.name}\0${box.architecture}\0${box.provider}`
      if (seen.has(group)) continue
      seen.add(group)
      wanted.push({
        name: box.name,
        constraint: undefined,
        boxUrl: undefined,
        stored: box,
        architecture: box.architecture,
        provider: box.provider,
      })
    }
    return wanted
  }
  const project = loadProject(options.cwd)
  const unique = new Map<string, Wanted>()
  for (const machine of project.machines) {
    const key = `${machine.box}\0${machine.boxVersion ?? ''}`
    if (unique.has(key)) continue
    const architecture = hostArchitecture()
    const stored = await findBox(machine.box, machine.boxVersion, architecture, {root})
    unique.set(key, {
      name: machine.box,
      constraint: machine.boxVersion,
      boxUrl: machine.boxUrl,
      stored,
      architecture,
      provider: stored?.provider,
    })
  }
  return [...unique.values()]
}

async function catalogFor(wanted: Wanted, options: OutdatedOptions): Promise<Catalog> {
  const maxAgeMs = options.refresh === true ? undefined : CATALOG_MAX_AGE_MS
  const known =
    wanted.stored?.source?.catalogUrl ??
    (wanted.boxUrl !== undefined && /\.json$/i.test(wanted.boxUrl) ? toUrl(wanted.boxUrl, options.cwd) : undefined)
  if (known !== undefined) return {...(await fetchCatalog(known, {...options, maxAgeMs})), name: wanted.name}
  if (isShortName(wanted.name)) return lookupShortName(wanted.name, options)
  throw new Error('the box was not added from a catalog, so there is nothing to compare with')
}

/** Compares the boxes a project (or, with global, the store) uses with their catalogs. */
export async function checkOutdated(given: OutdatedOptions): Promise<OutdatedEntry[]> {
  const options = {...given, authorizations: given.authorizations ?? (await loadAuthorizations(given.env ?? process.env))}
  const entries: OutdatedEntry[] = []
  for (const wanted of await wantedBoxes(options)) {
    const entry: OutdatedEntry = {
      name: wanted.name,
      constraint: wanted.constraint,
      architecture: wanted.architecture,
      provider: wanted.provider,
      installed: wanted.stored?.version,
      latest: undefined,
      outdated: false,
      catalogUrl: undefined,
      problem: undefined,
    }
    try {
      // A box from an OCI registry: its repository's tags that are versions are what is offered.
      const oci = [wanted.stored?.source?.url, wanted.boxUrl].find((url) => url !== undefined && isOciSource(url))
      if (oci !== undefined) {
        const repository = formatOciReference({...parseOciReference(oci), tag: undefined, digest: undefined})
        entry.catalogUrl = repository
        entry.latest = await newestTag(repository, wanted.constraint, options)
        entry.outdated = entry.latest !== undefined && (entry.installed === undefined || compareVersions(entry.latest, entry.installed) > 0)
        entries.push(entry)
        continue
      }
      const catalog = await catalogFor(wanted, options)
      entry.catalogUrl = catalog.url
      entry.latest = newestInCatalog(catalog, {constraint: wanted.constraint, provider: wanted.provider, architecture: wanted.architecture})
      entry.outdated = entry.latest !== undefined && (entry.installed === undefined || compareVersions(entry.latest, entry.installed) > 0)
    } catch (error) {
      if (options.signal?.aborted) throw error
      entry.problem = (error as Error).message
    }
    entries.push(entry)
  }
  return entries
}

export interface UpdateResult {
  name: string
  from: string | undefined
  to: string
  alreadyPresent: boolean
}

/** Adds the newest allowed version of every outdated box; older versions stay in the store. */
export async function updateBoxes(
  options: OutdatedOptions & {box?: string | undefined; add?: Partial<AddBoxOptions>},
): Promise<{updated: UpdateResult[]; checked: OutdatedEntry[]}> {
  const checked = (await checkOutdated({...options, refresh: true})).filter(
    (entry) => options.box === undefined || entry.name === options.box,
  )
  const updated: UpdateResult[] = []
  for (const entry of checked) {
    if (!entry.outdated || entry.latest === undefined || entry.catalogUrl === undefined) continue
    const oci = isOciSource(entry.catalogUrl)
    const result = await addBox({
      ...options.add,
      source: oci ? `${entry.catalogUrl}:${entry.latest}` : entry.catalogUrl,
      cwd: options.cwd,
      name: entry.name,
      constraint: oci ? undefined : `= ${entry.latest}`,
      provider: entry.provider,
      architecture: entry.architecture,
      insecure: options.insecure,
      token: options.token,
      signal: options.signal,
      env: options.env,
    })
    updated.push({name: entry.name, from: entry.installed, to: result.box.version, alreadyPresent: result.alreadyPresent})
  }
  return {updated, checked}
}
