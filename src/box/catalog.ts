import path from 'node:path'
import {pathToFileURL} from 'node:url'

import {UserError} from '../cli/errors.js'
import {providerRank} from './store.js'
import {compareVersions, isValidVersion, parseConstraint, satisfies} from './version.js'

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

/** Parses catalog JSON read from `url`; relative provider URLs become absolute. */
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
  const versions: CatalogVersion[] = []
  for (const entry of data.versions as Array<Record<string, unknown>>) {
    const version = text(entry?.version)
    if (version === undefined || !isValidVersion(version) || !Array.isArray(entry.providers)) continue
    const providers: CatalogProvider[] = []
    for (const provider of entry.providers as Array<Record<string, unknown>>) {
      const providerName = text(provider?.name)
      const link = text(provider?.url) ?? text(provider?.download_url)
      if (providerName === undefined || link === undefined) continue
      providers.push({
        name: providerName,
        url: new URL(link, url).href,
        checksumType: text(provider.checksum_type)?.toLowerCase(),
        checksum: text(provider.checksum)?.toLowerCase(),
        architecture: text(provider.architecture),
        defaultArchitecture: provider.default_architecture === true,
      })
    }
    versions.push({version, providers})
  }
  versions.sort((a, b) => compareVersions(b.version, a.version))
  return {name, description: text(data.description) ?? text(data.short_description), versions, url}
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
