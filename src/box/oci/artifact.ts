import {UserError} from '../../errors/errors.js'
import {isSafeRelativePath} from '../metadata.js'
import {MAX_CHUNK} from './chunker.js'

/**
 * How a box is laid out as an OCI artifact. The manifest (artifactType ARTIFACT_TYPE) lists
 * one layer per distinct chunk (see chunker.ts), typed by the role of the file it first
 * belongs to, gzip-compressed when that saves a tenth. The config blob is the recipe: the
 * box's key, and for every file its path, role, size and the chunks that rebuild it in order.
 * A chunk is named by the sha256 of its uncompressed bytes (what reuse across versions looks
 * for) and by its blob digest (what the registry stores and what is verified on download).
 */
export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
export const ARTIFACT_TYPE = 'application/vnd.vmfile.box.v1'
export const CONFIG_TYPE = 'application/vnd.vmfile.box.config.v1+json'
export const ROLES = ['metadata', 'disk', 'kernel', 'initrd', 'vagrantfile', 'file'] as const
export type FileRole = (typeof ROLES)[number]

export function layerMediaType(role: FileRole, gzip: boolean): string {
  const base = role === 'metadata' ? 'application/vnd.vmfile.box.metadata.v1+json' : `application/vnd.vmfile.box.${role}.chunk.v1`
  return gzip ? `${base}+gzip` : base
}

export interface RecipeChunk {
  /** sha256 of the uncompressed bytes. */
  digest: string
  size: number
  /** The registry blob holding them. */
  blob: string
  blobSize: number
  gzip: boolean
}

export interface RecipeFile {
  path: string
  role: FileRole
  size: number
  /** Indexes into chunks, in file order. */
  chunks: number[]
}

export interface BoxRecipe {
  schema: 1
  box: {name: string; version: string; architecture: string; provider: string}
  files: RecipeFile[]
  chunks: RecipeChunk[]
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  annotations?: Record<string, string>
}

export interface Manifest {
  schemaVersion: 2
  mediaType: string
  artifactType?: string
  config: Descriptor
  layers: Descriptor[]
  annotations?: Record<string, string>
}

const DIGEST = /^sha256:[a-f0-9]{64}$/
const MAX_FILES = 64

function invalid(where: string, problem: string): UserError {
  return new UserError(`${where} is not a vm box: ${problem}`, {
    code: 'BOX_INVALID',
    hint: 'Push boxes with vm box push; other artifacts in the repository cannot be added as boxes.',
  })
}

const isSize = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** Checks a manifest's shape and that it is a vm box. */
export function parseManifest(text: string, where: string): Manifest {
  let manifest: Manifest
  try {
    manifest = JSON.parse(text) as Manifest
  } catch {
    throw invalid(where, 'its manifest is not JSON')
  }
  if (typeof manifest !== 'object' || manifest === null || manifest.schemaVersion !== 2)
    throw invalid(where, 'its manifest is not an OCI image manifest')
  const config = manifest.config
  if (typeof config !== 'object' || config === null || config.mediaType !== CONFIG_TYPE)
    throw invalid(where, `its config is not ${CONFIG_TYPE} (it is ${String(config?.mediaType)})`)
  if (!Array.isArray(manifest.layers)) throw invalid(where, 'its manifest has no layers')
  for (const descriptor of [config, ...manifest.layers])
    if (typeof descriptor?.digest !== 'string' || !DIGEST.test(descriptor.digest) || !isSize(descriptor.size))
      throw invalid(where, 'a descriptor has no sha256 digest or size')
  return manifest
}

/** Checks a recipe against its manifest: every path safe, every chunk a listed layer, sizes adding up. */
export function parseRecipe(text: string, manifest: Manifest, where: string): BoxRecipe {
  let recipe: BoxRecipe
  try {
    recipe = JSON.parse(text) as BoxRecipe
  } catch {
    throw invalid(where, 'its config is not JSON')
  }
  if (typeof recipe !== 'object' || recipe === null || recipe.schema !== 1 || typeof recipe.box !== 'object' || recipe.box === null)
    throw invalid(where, 'its config is not a version 1 box recipe')
  for (const field of ['name', 'version', 'architecture', 'provider'] as const)
    if (typeof recipe.box[field] !== 'string') throw invalid(where, `its config has no box ${field}`)
  if (!Array.isArray(recipe.chunks) || !Array.isArray(recipe.files) || recipe.files.length === 0 || recipe.files.length > MAX_FILES)
    throw invalid(where, 'its config lists no files or chunks')
  const layers = new Map(manifest.layers.map((layer) => [layer.digest, layer.size]))
  for (const chunk of recipe.chunks) {
    if (typeof chunk !== 'object' || chunk === null || !DIGEST.test(String(chunk.digest)) || !DIGEST.test(String(chunk.blob)))
      throw invalid(where, 'a chunk has no sha256 digest')
    if (!isSize(chunk.size) || !isSize(chunk.blobSize) || typeof chunk.gzip !== 'boolean') throw invalid(where, 'a chunk has no size')
    // Chunks are held in memory while verified: no larger than the chunker makes them.
    if (chunk.size > MAX_CHUNK || chunk.blobSize > MAX_CHUNK + (1 << 20))
      throw invalid(where, `the chunk ${chunk.blob} is larger than ${MAX_CHUNK} bytes`)
    if (layers.get(chunk.blob) !== chunk.blobSize) throw invalid(where, `the chunk ${chunk.blob} is not a layer of its manifest`)
    if (!chunk.gzip && chunk.blob !== chunk.digest) throw invalid(where, `the uncompressed chunk ${chunk.blob} names another digest`)
  }
  const seen = new Set<string>()
  for (const file of recipe.files) {
    if (typeof file !== 'object' || file === null || typeof file.path !== 'string' || !isSafeRelativePath(file.path))
      throw invalid(where, `a file path (${JSON.stringify(file?.path)}) leaves the box folder`)
    const normal = file.path
      .split('/')
      .filter((part) => part !== '' && part !== '.')
      .join('/')
    if (seen.has(normal)) throw invalid(where, `${file.path} is listed twice`)
    seen.add(normal)
    if (!(ROLES as readonly string[]).includes(file.role)) throw invalid(where, `${file.path} has an unknown role`)
    if (!isSize(file.size) || !Array.isArray(file.chunks)) throw invalid(where, `${file.path} has no size or chunks`)
    let total = 0
    for (const index of file.chunks) {
      const chunk = Number.isSafeInteger(index) ? recipe.chunks[index] : undefined
      if (chunk === undefined) throw invalid(where, `${file.path} names a chunk that is not listed`)
      total += chunk.size
    }
    if (total !== file.size) throw invalid(where, `the chunks of ${file.path} add up to ${total} bytes, not ${file.size}`)
  }
  if (!seen.has('metadata.json')) throw invalid(where, 'it has no metadata.json')
  return recipe
}
