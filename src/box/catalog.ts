import path from 'node:path'
import {pathToFileURL} from 'node:url'

import {UserError} from '../errors/errors.js'
import {providerRank} from './store.js'
import {FIELD_RULES, fieldProblem, isValidChecksum, quoteValue, type FieldRule} from './fields.js'
import {compareVersions, parseConstraint, satisfies} from './version.js'

/**
 * Vagrant box metadata (a "catalog"): a box name and its versions, each with one entry per
 * provider and architecture. HCP Vagrant's API answers in the same shape (with download_url).
 */
export interface CatalogProvider {
  name: string
  url: string
  checksumType: string | undefined
  checksum: string | undefined
  architecture: string | undefined
  defaultArchitecture: boolean
}

export interface CatalogVersion {
  version: string
  providers: CatalogProvider[]
}

export interface Catalog {
  name: string
  description: string | undefined
  versions: CatalogVersion[]
  /** Where the catalog was read from (an http(s) or file URL); relative box URLs resolve against it. */
  url: string
}

export const CHECKSUM_TYPES = ['md5', 'sha1', 'sha256', 'sha384', 'sha512'] as const

/** A URL for a path or URL string: plain paths become file:// URLs. */
export function toUrl(source: string, cwd = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return source
  return pathToFileURL(path.resolve(cwd, source)).href
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** Display-only text (a description): control characters become spaces. */
function plainText(value: unknown): string | undefined {
  const found = text(value)
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  return found?.replace(/[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]+/g, ' ')
}

/**
 * Where a catalog entry's box may be fetched from: http(s), or a file when the catalog itself
 * is a local file. A catalog served over the network may not make vm read local files.
 */
function boxUrl(link: string, catalogUrl: string): string | undefined {
  let resolved: URL
  try {
    resolved = new URL(link, catalogUrl)
  } catch {
    return undefined
  }
  if (resolved.protocol === 'http:' || resolved.protocol === 'https:') return resolved.href
  if (resolved.protocol === 'file:' && new URL(catalogUrl).protocol === 'file:') return resolved.href
  return undefined
}

/**
 * Parses catalog JSON read from `url`; relative provider URLs become absolute. Every field vm
 * uses is checked against a strict pattern; the error lists every bad one, escaped.
 */
export function parseCatalog(json: string, url: string): Catalog {
  let data: Record<string, unknown>
  try {
    data = JSON.parse(json) as Record<string, unknown>
  } catch (error) {
    throw new UserError(`${url} is not a box catalog: ${(error as Error).message}`, {code: 'CATALOG_INVALID'})
  }
  const tag = text(data?.tag)
  const name = tag?.includes('/') === true ? tag : (text(data?.name) ?? tag)
  if (typeof data !== 'object' || data === null || name === undefined || !Array.isArray(data.versions)) {
    throw new UserError(`${url} is not a box catalog: it needs "name" and "versions"`, {
      code: 'CATALOG_INVALID',
      hint: 'A catalog looks like {"name": "org/box", "versions": [{"version": "1.0.0", "providers": [{"name": "libvirt", "url": ...}]}]}.',
    })
  }
  const problems: string[] = []
  const check = (label: string, value: unknown, rule: FieldRule): string | undefined => {
    const problem = fieldProblem(label, value, rule)
    if (problem !== undefined) problems.push(problem)
    return problem === undefined ? (value as string) : undefined
  }
  check(tag === name ? 'tag' : 'name', name, FIELD_RULES.name)
  const versions: CatalogVersion[] = []
  for (const [index, entry] of (data.versions as Array<Record<string, unknown>>).entries()) {
    const at = `versions[${index}]`
    if (typeof entry !== 'object' || entry === null) {
      problems.push(`"${at}" must be an object with "version" and "providers"`)
      continue
    }
    const version = check(`${at}.version`, entry.version, FIELD_RULES.version)
    if (!Array.isArray(entry.providers)) {
      problems.push(`"${at}.providers" must be a list`)
      continue
    }
    const providers: CatalogProvider[] = []
    for (const [place, provider] of (entry.providers as Array<Record<string, unknown>>).entries()) {
      const where = `${at}.providers[${place}]`
      if (typeof provider !== 'object' || provider === null) {
        problems.push(`"${where}" must be an object with "name" and "url"`)
        continue
      }
      const providerName = check(`${where}.name`, provider.name, FIELD_RULES.provider)
      const link = text(provider.url) ?? text(provider.download_url)
      const resolved = link === undefined ? undefined : boxUrl(link, url)
      if (link === undefined) problems.push(`"${where}" has no "url"`)
      else if (resolved === undefined)
        problems.push(`"${where}.url" is ${quoteValue(link)}; it must be an http(s) URL${url.startsWith('file:') ? ' or a file path' : ''}`)
      const architecture =
        provider.architecture === undefined ? undefined : check(`${where}.architecture`, provider.architecture, FIELD_RULES.architecture)
      const checksumType = text(provider.checksum_type)?.toLowerCase()
      const checksum = text(provider.checksum)?.toLowerCase()
      if (checksumType !== undefined && !CHECKSUM_TYPES.includes(checksumType as never))
        problems.push(`"${where}.checksum_type" is ${quoteValue(provider.checksum_type)}; it must be one of ${CHECKSUM_TYPES.join(', ')}`)
      else if (checksum !== undefined && (checksumType === undefined || !isValidChecksum(checksumType, checksum)))
        problems.push(`"${where}.checksum" is ${quoteValue(provider.checksum)}; it must be the hex digest named by "checksum_type"`)
      if (providerName === undefined || resolved === undefined) continue
      providers.push({
        name: providerName,
        url: resolved,
        checksumType,
        checksum,
        architecture,
        defaultArchitecture: provider.default_architecture === true,
      })
    }
    if (version !== undefined) versions.push({version, providers})
  }
  if (problems.length > 0) {
    throw new UserError(`The box catalog ${url} is not usable`, {
      code: 'CATALOG_INVALID',
      details: problems,
      hint: 'Ask its publisher to fix the catalog, or add the box from its URL with --name.',
    })
  }
  versions.sort((a, b) => compareVersions(b.version, a.version))
  return {name, description: plainText(data.description) ?? plainText(data.short_description), versions, url}
}

export interface SelectOptions {
  constraint?: string | undefined
  provider?: string | undefined
  architecture: string
}

export interface Selection {
  version: string
  provider: CatalogProvider
  /** The architecture the box is stored under. */
  architecture: string
}

function archMatches(provider: CatalogProvider, architecture: string): boolean {
  // Catalogs from before Vagrant 2.4 name no architecture: the entry is for whatever host asks.
  return provider.architecture === undefined || provider.architecture === architecture || provider.architecture === 'unknown'
}

/**
 * The newest version that meets the constraint and offers a usable provider for the
 * architecture; among several providers qemu wins over libvirt. Throws a UserError saying
 * what the catalog does offer.
 */
export function selectFromCatalog(catalog: Catalog, options: SelectOptions): Selection {
  let requirements
  try {
    requirements = options.constraint === undefined ? [] : parseConstraint(options.constraint)
  } catch (error) {
    throw new UserError(`Invalid version constraint "${options.constraint}": ${(error as Error).message}`, {
      code: 'USAGE',
      exit: 'usage',
      hint: 'Use a constraint such as "1.2.3", ">= 1.0, < 2.0" or "~> 1.2".',
    })
  }
  const wanted = options.provider === undefined ? ['qemu', 'libvirt'] : [options.provider]
  const allowed = catalog.versions.filter((entry) => satisfies(entry.version, requirements))
  for (const entry of allowed) {
    const usable = entry.providers
      .filter((provider) => wanted.includes(provider.name) && archMatches(provider, options.architecture))
      .sort(
        (a, b) =>
          providerRank(a.name) - providerRank(b.name) || Number(b.architecture !== undefined) - Number(a.architecture !== undefined),
      )
    const chosen = usable[0]
    if (chosen !== undefined) return {version: entry.version, provider: chosen, architecture: options.architecture}
  }
  const offered = catalog.versions
    .slice(0, 8)
    .map((entry) => `${entry.version}: ${entry.providers.map((p) => `${p.name}/${p.architecture ?? 'any'}`).join(', ') || 'no providers'}`)
  const what = `${wanted.join(' or ')} on ${options.architecture}${options.constraint === undefined ? '' : ` matching "${options.constraint}"`}`
  throw new UserError(`Box ${catalog.name} has no version for ${what}`, {
    code: 'BOX_VERSION_NOT_FOUND',
    details: offered.length === 0 ? ['the catalog lists no versions'] : offered.map((line) => `offered ${line}`),
    hint: allowed.length === 0 ? "Loosen --box-version or the Vmfile's box_version." : 'Pick another --provider or --architecture.',
    data: {catalog: catalog.url},
  })
}

/** The newest version allowed by the constraint (any provider/architecture check included). */
export function newestInCatalog(catalog: Catalog, options: SelectOptions): string | undefined {
  try {
    return selectFromCatalog(catalog, options).version
  } catch {
    return undefined
  }
}
