import {UsageError} from '../../errors/errors.js'
import {quoteValue} from '../fields.js'

/**
 * A box in an OCI registry: `oci://HOST[:PORT]/REPO[:TAG]` or `oci://HOST[:PORT]/REPO@sha256:HEX`.
 * REPO follows the distribution spec's name grammar (lowercase path components); TAG is at
 * most 128 characters of `[A-Za-z0-9_.-]` not starting with `.` or `-`.
 */
export interface OciReference {
  /** HOST[:PORT] as written (lowercased); the key for stored credentials. */
  host: string
  repository: string
  tag: string | undefined
  digest: string | undefined
}

const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^sha256:[a-f0-9]{64}$/
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/

export function isOciSource(source: string): boolean {
  return /^oci:\/\//i.test(source)
}

function refError(source: string, problem: string): UsageError {
  return new UsageError(`${quoteValue(source)} is not a usable OCI reference: ${problem}`, {
    hint: 'Write oci://HOST[:PORT]/REPOSITORY[:TAG] or oci://HOST/REPOSITORY@sha256:DIGEST, e.g. oci://registry.example.org/team/debian:1.0.0.',
  })
}

/** Parses an oci:// reference; the error says which part is wrong. */
export function parseOciReference(source: string): OciReference {
  if (!isOciSource(source)) throw refError(source, 'it does not start with oci://')
  const rest = source.slice('oci://'.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) throw refError(source, 'it names no repository after the host')
  const host = rest.slice(0, slash).toLowerCase()
  if (!HOST.test(host) || Number(/:(\d+)$/.exec(host)?.[1] ?? 1) > 65_535)
    throw refError(source, `${quoteValue(host)} is not a host[:port]`)
  let name = rest.slice(slash + 1)
  let digest: string | undefined
  let tag: string | undefined
  const at = name.indexOf('@')
  if (at !== -1) {
    digest = name.slice(at + 1)
    name = name.slice(0, at)
    if (!DIGEST.test(digest)) throw refError(source, `${quoteValue(digest)} is not a sha256:<64 hex digits> digest`)
  }
  const colon = name.lastIndexOf(':')
  if (colon !== -1) {
    tag = name.slice(colon + 1)
    name = name.slice(0, colon)
    if (!TAG.test(tag)) throw refError(source, `${quoteValue(tag)} is not a tag (letters, digits, _ . -, at most 128)`)
  }
  if (name.length > 255 || !REPOSITORY.test(name))
    throw refError(source, `${quoteValue(name)} is not a repository name (lowercase letters, digits and . _ - between slashes)`)
  return {host, repository: name, tag, digest}
}

/** The reference written back, without the tag when a digest pins it. */
export function formatOciReference(ref: OciReference): string {
  const base = `oci://${ref.host}/${ref.repository}`
  if (ref.digest !== undefined) return `${base}@${ref.digest}`
  return ref.tag === undefined ? base : `${base}:${ref.tag}`
}

/** Loopback hosts may be reached over plain http without --insecure. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
  return bare === 'localhost' || bare === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bare)
}
