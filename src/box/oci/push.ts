import {createHash} from 'node:crypto'
import {stat} from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {gzip} from 'node:zlib'

import {UsageError, UserError} from '../../errors/errors.js'
import {vmPaths} from '../../state/paths.js'
import {findCredential} from '../credentials.js'
import type {DownloadProgress} from '../download.js'
import {isValidBoxVersion, quoteValue} from '../fields.js'
import {referencedFiles} from '../metadata.js'
import {findBox, hostArchitecture, METADATA_FILE, type StoredBox} from '../store.js'
import {
  ARTIFACT_TYPE,
  CONFIG_TYPE,
  layerMediaType,
  MANIFEST_TYPE,
  type BoxRecipe,
  type Descriptor,
  type FileRole,
  type Manifest,
  type RecipeChunk,
} from './artifact.js'
import {chunkFile} from './chunker.js'
import {isTransient, readSmallBody, RegistryClient} from './client.js'
import {formatOciReference, parseOciReference} from './reference.js'
import {hasBlob, uploadBlob, type UploadOptions} from './upload.js'

const gzipAsync = promisify(gzip)

export interface PushOptions extends UploadOptions {
  /** NAME or NAME@VERSION of a stored box. */
  box: string
  /** oci://HOST[:PORT]/REPO[:TAG]; the tag defaults to the box's version. */
  target: string
  architecture?: string | undefined
  insecure?: boolean | undefined
  /** CA certificates (PEM text). */
  cacert?: string | undefined
  env?: NodeJS.ProcessEnv | undefined
  onStatus?: ((message: string) => void) | undefined
  onProgress?: ((progress: DownloadProgress) => void) | undefined
}

export interface PushResult {
  reference: string
  digest: string
  name: string
  version: string
  /** Bytes of the box's files. */
  size: number
  blobs: number
  /** Blobs the registry already had (never sent). */
  blobsReused: number
  /** Bytes of the blobs the registry already had, or that repeat inside the box. */
  bytesReused: number
  /** Bytes sent over the network (request bodies, retries included). */
  bytesSent: number
}

const CONCURRENCY = 3

function splitBoxArgument(box: string): {name: string; version: string | undefined} {
  const at = box.lastIndexOf('@')
  if (at <= 0) return {name: box, version: undefined}
  const version = box.slice(at + 1)
  if (!isValidBoxVersion(version)) throw new UsageError(`${quoteValue(version)} is not a box version`, {hint: 'Write NAME@1.2.3.'})
  return {name: box.slice(0, at), version}
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

async function boxFiles(box: StoredBox): Promise<Array<{path: string; role: FileRole}>> {
  const files: Array<{path: string; role: FileRole}> = [{path: METADATA_FILE, role: 'metadata'}]
  const disks = new Set(box.metadata.disks.map((disk) => disk.path))
  for (const file of referencedFiles(box.metadata)) {
    const role: FileRole = disks.has(file)
      ? 'disk'
      : file === box.metadata.kernel
        ? 'kernel'
        : file === box.metadata.initrd
          ? 'initrd'
          : 'file'
    files.push({path: file, role})
  }
  if ((await stat(path.join(box.dir, 'Vagrantfile')).catch(() => undefined))?.isFile() === true)
    files.push({path: 'Vagrantfile', role: 'vagrantfile'})
  return files
}

/** Uploads a stored box as an OCI artifact (see artifact.ts), sending only the blobs the registry lacks. */
export async function pushBox(options: PushOptions): Promise<PushResult> {
  const env = options.env ?? process.env
  const ref = parseOciReference(options.target)
  if (ref.digest !== undefined)
    throw new UsageError('A push names a tag, not a digest', {hint: 'Write oci://HOST/REPO:TAG (the tag defaults to the version).'})
  const wanted = splitBoxArgument(options.box)
  const box = await findBox(
    wanted.name,
    wanted.version === undefined ? undefined : `= ${wanted.version}`,
    options.architecture ?? hostArchitecture(),
    {root: vmPaths(env).boxes},
  )
  if (box === undefined)
    throw new UserError(`The box ${wanted.name}${wanted.version === undefined ? '' : ` ${wanted.version}`} is not in the store`, {
      code: 'BOX_NOT_FOUND',
      hint: 'vm box list shows the stored boxes.',
    })
  const tag = ref.tag ?? box.version
  const reference = formatOciReference({...ref, tag})
  const client = new RegistryClient(ref, {
    actions: 'pull,push',
    insecure: options.insecure,
    cacert: options.cacert,
    credential: await findCredential(ref.host, env),
    signal: options.signal,
  })
  try {
    await client.connect()
    options.onStatus?.(`Pushing ${box.name} ${box.version} to ${reference}`)
    const files = await boxFiles(box)
    let total = 0
    for (const file of files) total += (await stat(path.join(box.dir, file.path))).size
    const recipe: BoxRecipe = {
      schema: 1,
      box: {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider},
      files: [],
      chunks: [],
    }
    const layers: Descriptor[] = []
    const byDigest = new Map<string, number>()
    const pending = new Set<Promise<void>>()
    let failure: unknown
    let done = 0
    let blobsReused = 0
    let bytesReused = 0
    const send = async (digest: string, body: Buffer): Promise<void> => {
      if (await hasBlob(client, digest)) {
        blobsReused++
        bytesReused += body.length
        return
      }
      await uploadBlob(client, digest, body, options)
    }
    const enqueue = async (work: Promise<void>): Promise<void> => {
      const tracked = work.catch((error: unknown) => {
        failure ??= error
      })
      const entry = tracked.finally(() => pending.delete(entry))
      pending.add(entry)
      if (pending.size >= CONCURRENCY) await Promise.race(pending)
      if (failure !== undefined) throw failure
    }
    for (const file of files) {
      const indexes: number[] = []
      for await (const {data} of chunkFile(path.join(box.dir, file.path))) {
        const digest = sha256(data)
        let index = byDigest.get(digest)
        if (index === undefined) {
          let blob = data
          let gzipped = false
          if (data.length >= 4096) {
            const packed = await gzipAsync(data, {level: 6})
            if (packed.length <= data.length * 0.9) {
              blob = packed
              gzipped = true
            }
          }
          const chunk: RecipeChunk = {
            digest,
            size: data.length,
            blob: gzipped ? sha256(blob) : digest,
            blobSize: blob.length,
            gzip: gzipped,
          }
          index = recipe.chunks.push(chunk) - 1
          byDigest.set(digest, index)
          layers.push({mediaType: layerMediaType(file.role, gzipped), digest: chunk.blob, size: chunk.blobSize})
          await enqueue(send(chunk.blob, blob))
        } else {
          bytesReused += recipe.chunks[index]!.blobSize
        }
        indexes.push(index)
        done += data.length
        options.onProgress?.({url: reference, received: done, total, resumedFrom: 0})
      }
      const size = (await stat(path.join(box.dir, file.path))).size
      recipe.files.push({path: file.path, role: file.role, size, chunks: indexes})
    }
    await Promise.all(pending)
    if (failure !== undefined) throw failure
    const configBody = Buffer.from(`${JSON.stringify(recipe)}\n`)
    const config: Descriptor = {mediaType: CONFIG_TYPE, digest: sha256(configBody), size: configBody.length}
    if (!(await hasBlob(client, config.digest))) await uploadBlob(client, config.digest, configBody, options)
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      artifactType: ARTIFACT_TYPE,
      config,
      layers,
      annotations: {
        'org.opencontainers.image.title': box.name,
        'org.opencontainers.image.version': box.version,
        'org.opencontainers.image.created': new Date().toISOString(),
      },
    }
    const manifestBody = Buffer.from(JSON.stringify(manifest))
    const digest = sha256(manifestBody)
    const response = await client.send('PUT', client.repoPath(`manifests/${tag}`), {
      headers: {'content-type': MANIFEST_TYPE},
      body: manifestBody,
    })
    const text = (await readSmallBody(response)).toString('utf8')
    if (response.status !== 201) throw client.statusError(`PUT manifest ${tag}`, response.status, text)
    const stored = response.headers['docker-content-digest']
    if (stored !== undefined && stored !== digest)
      throw new UserError(`The registry stored the manifest as ${String(stored)}, not ${digest}`, {code: 'REGISTRY_FAILED'})
    return {
      reference,
      digest,
      name: box.name,
      version: box.version,
      size: total,
      blobs: layers.length,
      blobsReused,
      bytesReused,
      bytesSent: client.sent,
    }
  } catch (error) {
    if (error instanceof UserError || error instanceof UsageError || !isTransient(error)) throw error
    throw client.networkError(error)
  } finally {
    client.close()
  }
}
