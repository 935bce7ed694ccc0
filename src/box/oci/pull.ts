import {createHash, randomBytes} from 'node:crypto'
import {appendFile, mkdir, open, readFile, rename, rm, stat, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {UserError} from '../../errors/errors.js'
import {acquireFileLock} from '../../state/file-lock.js'
import {vmPaths} from '../../state/paths.js'
import {findCredential} from '../credentials.js'
import type {DownloadProgress} from '../download.js'
import {isValidBoxVersion} from '../fields.js'
import {listBoxes, readStoredBox, type BoxKey, type StoredBox} from '../store.js'
import {parseByteSize, UnpackBudget, type UnpackLimits} from '../unpack-budget.js'
import type {DiskFacts} from '../verify.js'
import {MANIFEST_TYPE, parseManifest, parseRecipe, type BoxRecipe, type RecipeChunk} from './artifact.js'
import {MAX_CHUNK} from './chunker.js'
import {isTransient, readSmallBody, RegistryClient} from './client.js'
import {QCOW2_HEADER_BYTES, qcow2Facts} from './qcow2-facts.js'
import {ChunkInflater} from './inflate.js'
import {formatOciReference, type OciReference} from './reference.js'

/**
 * Pulls a box pushed by push.ts into the store. Each chunk is taken from a stored box that
 * has the same bytes (an earlier version from a registry: its recipe is kept in its
 * source.json), else downloaded; a download is hashed while it streams and rejected unless
 * its digest and size match the manifest, and continues with a Range request after a dropped
 * connection. The files are assembled in `<boxes>/.oci-<key>/` with a journal of finished
 * chunks, so a pull cut short continues where it stopped; the finished folder goes through
 * the same verification and atomic install as every add (`install`).
 */
export interface OciSourceRecord {
  reference: string
  digest: string
  recipe: BoxRecipe
}

export interface PullOptions {
  name?: string | undefined
  force?: boolean | undefined
  clean?: boolean | undefined
  insecure?: boolean | undefined
  cacert?: string | undefined
  signal?: AbortSignal | undefined
  env: NodeJS.ProcessEnv
  retries?: number | undefined
  retryDelayMs?: number | undefined
  limits?: UnpackLimits | undefined
  onStatus?: ((message: string) => void) | undefined
  onProgress?: ((progress: DownloadProgress) => void) | undefined
}

export interface PullResult {
  /** The box when it was already stored (nothing downloaded). */
  present: StoredBox | undefined
  /** The assembled box folder, in the store's root, for `install` to consume. */
  dir: string | undefined
  key: BoxKey
  reference: string
  record: OciSourceRecord
  /** Blob bytes downloaded in this run. */
  received: number
  /** Bytes taken from stored boxes instead of downloaded. */
  reused: number
  size: number
  /** What qemu-img would say of the plain qcow2 disks, read from the headers just written (see qcow2-facts.ts). */
  diskFacts: Map<string, DiskFacts>
  release: () => Promise<void>
}

const CONCURRENCY = 4

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

function corrupt(where: string, problem: string): UserError {
  return new UserError(`${where}: ${problem}`, {
    code: 'BOX_CORRUPT',
    hint: 'The registry served bytes that do not match the box pushed there: nothing was stored. Tell the registry administrator; run the command again to retry.',
  })
}

/** Thrown when the registry cannot continue a range: the blob is taken again from its start. */
class RestartBlob extends Error {}

/**
 * One blob, verified against its digest and size while it streams (hashed piece by piece as
 * it arrives, into `scratch` when that is large enough: one buffer per worker, reused);
 * resumes with Range after a drop. Returns the chunk's bytes: the blob itself, or what it
 * inflates to (into the worker's `inflater`, exactly the size the recipe gives). The inflated
 * bytes are not hashed again: the blob they come from matched its digest, and the recipe that
 * pairs it with the chunk's digest is itself a blob verified through the manifest's digest.
 * (Chunks taken from stored boxes are hashed when read: those files may have changed.)
 */
async function fetchBlob(
  client: RegistryClient,
  chunk: RecipeChunk,
  options: PullOptions,
  scratch: Buffer,
  inflater: ChunkInflater,
  onBytes: (bytes: number) => void,
): Promise<Buffer> {
  const blob = scratch.length >= chunk.blobSize ? scratch.subarray(0, chunk.blobSize) : Buffer.allocUnsafe(chunk.blobSize)
  const where = `The blob ${chunk.blob} from ${client.ref.host}`
  let hash = createHash('sha256')
  let received = 0
  let failures = 0
  const retries = options.retries ?? 5
  const count = (bytes: number): void => {
    received += bytes
    client.received += bytes
    onBytes(bytes)
  }
  /** A piece of the general client's answer: checked against the declared size, hashed, copied into `blob`. */
  const take = (data: Buffer): void => {
    if (received + data.length > chunk.blobSize) throw corrupt(where, `it is longer than the ${chunk.blobSize} bytes its manifest declares`)
    hash.update(data)
    data.copy(blob, received)
    count(data.length)
  }
  const target = client.repoPath(`blobs/${chunk.blob}`)
  for (;;) {
    try {
      const headers: Record<string, string> = received > 0 ? {range: `bytes=${received}-`} : {}
      const plain = await client.getPlain(target, headers, {
        onHead: (head) => {
          if (received > 0 && (head.status !== 206 || head.rangeStart !== received)) throw new RestartBlob('range not honoured')
          if (received + head.length > chunk.blobSize)
            throw corrupt(where, `it is longer than the ${chunk.blobSize} bytes its manifest declares`)
          // The plain-http reader puts the body straight into `blob`, after what arrived before a drop.
          return blob.subarray(received)
        },
        onData: (piece) => {
          hash.update(piece)
          count(piece.length)
        },
      })
      if (plain === undefined) await fetchThroughClient(client, chunk, target, headers, received, take)
      if (received < chunk.blobSize) throw Object.assign(new Error('the connection closed early'), {transient: true})
      break
    } catch (error) {
      if (error instanceof RestartBlob) {
        // The registry cannot continue a range: take the blob from its start, at once. Not a
        // failure of its own: it only follows a counted drop (received > 0).
        hash = createHash('sha256')
        received = 0
        continue
      }
      if (options.signal?.aborted || error instanceof UserError || !isTransient(error)) throw client.networkError(error)
      failures++
      if (failures > retries)
        throw new UserError(`Downloading ${chunk.blob} from ${client.ref.host} failed ${failures} times: ${(error as Error).message}`, {
          code: 'DOWNLOAD_FAILED',
          hint: 'Run the same command again: the chunks already received are kept and not downloaded again (--clean starts over).',
          cause: error,
        })
      await sleep(Math.min((options.retryDelayMs ?? 300) * 2 ** (failures - 1), 10_000), undefined, {signal: options.signal})
    }
  }
  const digest = `sha256:${hash.digest('hex')}`
  if (digest !== chunk.blob) throw corrupt(where, `its bytes hash to ${digest}`)
  // An uncompressed blob's digest is the chunk's (checked by parseRecipe): verified above.
  if (!chunk.gzip) {
    if (received !== chunk.size) throw corrupt(`The blob ${chunk.blob}`, 'its size does not match the chunk size in the recipe')
    return blob
  }
  try {
    return await inflater.inflate(blob, chunk.size)
  } catch (error) {
    throw corrupt(`The blob ${chunk.blob}`, `it does not decompress to the chunk its recipe declares (${(error as Error).message})`)
  }
}

/** The general path (client.send: TLS, auth challenges, redirects) for one attempt at a blob. */
async function fetchThroughClient(
  client: RegistryClient,
  chunk: RecipeChunk,
  target: string,
  headers: Record<string, string>,
  received: number,
  take: (data: Buffer) => void,
): Promise<void> {
  const response = await client.send('GET', target, {headers})
  if (response.status === 206 && received > 0) {
    const range = /bytes (\d+)-/.exec(String(response.headers['content-range'] ?? ''))
    if (range === null || Number(range[1]) !== received) {
      response.body.destroy()
      throw new RestartBlob('wrong range')
    }
  } else if (response.status === 200) {
    if (received > 0) {
      response.body.destroy()
      throw new RestartBlob('range ignored')
    }
  } else {
    const text = (await readSmallBody(response).catch(() => Buffer.alloc(0))).toString('utf8')
    if (response.status === 408 || response.status === 429 || response.status >= 500)
      throw Object.assign(new Error(`GET blob answered ${response.status}`), {transient: true})
    throw client.statusError(`GET blob ${chunk.blob}`, response.status, text)
  }
  try {
    for await (const data of response.body) take(data as Buffer)
  } catch (error) {
    response.body.destroy()
    throw error
  }
}

/** Where stored boxes hold each chunk of bytes (by its uncompressed digest). */
async function localChunks(root: string): Promise<Map<string, {file: string; offset: number; size: number}>> {
  const found = new Map<string, {file: string; offset: number; size: number}>()
  for (const box of await listBoxes(root)) {
    const record = (box.source as {oci?: OciSourceRecord} | undefined)?.oci
    if (record?.recipe?.files === undefined) continue
    for (const file of record.recipe.files) {
      let offset = 0
      for (const index of file.chunks) {
        const chunk = record.recipe.chunks[index]
        if (chunk === undefined) break
        if (!found.has(chunk.digest)) found.set(chunk.digest, {file: path.join(box.dir, file.path), offset, size: chunk.size})
        offset += chunk.size
      }
    }
  }
  return found
}

/** Writes `pieces` back to back from `offset` (writev may write less than asked: continues). */
async function writeAllAt(handle: FileHandle, pieces: Buffer[], offset: number): Promise<void> {
  let rest = pieces
  let position = offset
  while (rest.length > 0) {
    const {bytesWritten} = await handle.writev(rest, position)
    position += bytesWritten
    let skip = bytesWritten
    const next: Buffer[] = []
    for (const piece of rest) {
      if (skip >= piece.length) skip -= piece.length
      else {
        next.push(skip > 0 ? piece.subarray(skip) : piece)
        skip = 0
      }
    }
    if (next.length > 0 && bytesWritten === 0) throw new Error(`could not write at offset ${position}`)
    rest = next
  }
}

async function readAt(file: string, offset: number, size: number): Promise<Buffer | undefined> {
  let handle: FileHandle | undefined
  try {
    handle = await open(file, 'r')
    const buffer = Buffer.allocUnsafe(size)
    const {bytesRead} = await handle.read(buffer, 0, size, offset)
    return bytesRead === size ? buffer : undefined
  } catch {
    return undefined
  } finally {
    await handle?.close()
  }
}

/** Reads the manifest and recipe, decides the key, and (unless stored) assembles the box. */
export async function pullOciBox(ref: OciReference, options: PullOptions): Promise<PullResult> {
  const env = options.env
  const paths = vmPaths(env)
  const client = new RegistryClient(ref, {
    actions: 'pull',
    insecure: options.insecure,
    cacert: options.cacert,
    credential: await findCredential(ref.host, env),
    signal: options.signal,
  })
  const noop = async () => undefined
  try {
    await client.connect()
    const target = ref.digest ?? ref.tag ?? 'latest'
    const where = formatOciReference({...ref, tag: ref.tag ?? (ref.digest === undefined ? 'latest' : undefined)})
    const response = await client.send('GET', client.repoPath(`manifests/${target}`), {headers: {accept: MANIFEST_TYPE}})
    const body = await readSmallBody(response, 4 << 20, (bytes) => (client.received += bytes))
    if (response.status !== 200) throw client.statusError(`GET manifest ${target}`, response.status, body.toString('utf8'))
    const digest = sha256(body)
    if (ref.digest !== undefined && digest !== ref.digest) throw corrupt(where, `its manifest hashes to ${digest}`)
    const manifest = parseManifest(body.toString('utf8'), where)
    const configResponse = await client.send('GET', client.repoPath(`blobs/${manifest.config.digest}`))
    const configBody = await readSmallBody(configResponse, 16 << 20, (bytes) => (client.received += bytes))
    if (configResponse.status !== 200) throw client.statusError('GET config', configResponse.status, configBody.toString('utf8'))
    if (sha256(configBody) !== manifest.config.digest) throw corrupt(where, 'its config blob does not match its digest')
    const recipe = parseRecipe(configBody.toString('utf8'), manifest, where)
    const tagVersion = ref.digest === undefined && ref.tag !== undefined && isValidBoxVersion(ref.tag) ? ref.tag : undefined
    const key: BoxKey = {
      name: options.name ?? recipe.box.name,
      version: tagVersion ?? recipe.box.version,
      architecture: recipe.box.architecture,
      provider: recipe.box.provider,
    }
    const record: OciSourceRecord = {reference: where, digest, recipe}
    const size = recipe.files.reduce((sum, file) => sum + file.size, 0)
    const result = {key, reference: where, record, received: 0, reused: 0, size, diskFacts: new Map<string, DiskFacts>()}
    const stored = options.force === true ? undefined : await readStoredBox(key, paths.boxes).catch(() => undefined)
    if (stored !== undefined) return {...result, present: stored, dir: undefined, release: noop}

    // The manifest digest names the content wherever it is served from (chunks are verified on arrival).
    const cacheKey = createHash('sha256').update(`oci\0${digest}`).digest('hex').slice(0, 32)
    const release = await acquireFileLock(path.join(paths.downloads, `${cacheKey}.lock`), {
      signal: options.signal,
      onWait: (pid) => options.onStatus?.(`Waiting for vm process ${pid}, which is adding the same box`),
    })
    try {
      const work = path.join(paths.boxes, `.oci-${cacheKey}`)
      const journal = path.join(paths.downloads, `${cacheKey}.oci-done`)
      if (options.clean === true || !(await stat(work).catch(() => undefined))?.isDirectory()) {
        await rm(work, {recursive: true, force: true})
        await rm(journal, {force: true})
      }
      await mkdir(work, {recursive: true})
      const done = new Set(
        (await readFile(journal, 'utf8').catch(() => '')).split('\n').filter((line) => /^sha256:[a-f0-9]{64}$/.test(line)),
      )
      const budget = await UnpackBudget.start(work, where, {maxBytes: parseByteSize(env.VM_BOX_MAX_UNPACKED), ...options.limits})
      await budget.take(size)
      // Where each distinct chunk goes: every (file, offset) that holds it.
      const targets = new Map<number, Array<{handle: FileHandle; offset: number}>>()
      const handles: FileHandle[] = []
      const disks: Array<{file: string; handle: FileHandle; size: number}> = []
      const journalHandle = await open(journal, 'a')
      handles.push(journalHandle)
      let journalled: Promise<void> = Promise.resolve()
      try {
        for (const file of recipe.files) {
          const full = path.join(work, file.path)
          await mkdir(path.dirname(full), {recursive: true})
          await appendFile(full, '')
          const handle = await open(full, 'r+')
          handles.push(handle)
          if ((await handle.stat()).size !== file.size) await handle.truncate(file.size)
          if (file.role === 'disk') disks.push({file: path.normalize(file.path), handle, size: file.size})
          let offset = 0
          for (const index of file.chunks) {
            const list = targets.get(index) ?? []
            list.push({handle, offset})
            targets.set(index, list)
            offset += recipe.chunks[index]!.size
          }
        }
        const local = await localChunks(paths.boxes)
        const resumedFrom = [...targets.keys()].reduce(
          (sum, index) => sum + (done.has(recipe.chunks[index]!.digest) ? recipe.chunks[index]!.size : 0),
          0,
        )
        if (resumedFrom > 0) options.onStatus?.(`Continuing an interrupted pull of ${where}`)
        let progress = resumedFrom
        const report = () => options.onProgress?.({url: where, received: progress, total: size, resumedFrom})
        const queue = [...targets.keys()].filter((index) => !done.has(recipe.chunks[index]!.digest))
        const worker = async (): Promise<void> => {
          try {
            await drain()
          } catch (error) {
            queue.length = 0
            throw error
          }
        }
        const drain = async (): Promise<void> => {
          const inflater = new ChunkInflater()
          try {
            await drainInto(inflater)
          } finally {
            inflater.close()
          }
        }
        const drainInto = async (inflater: ChunkInflater): Promise<void> => {
          let scratch = Buffer.alloc(0)
          for (;;) {
            const index = queue.shift()
            if (index === undefined) return
            const chunk = recipe.chunks[index]!
            let data: Buffer | undefined
            const near = local.get(chunk.digest)
            if (near !== undefined) {
              const copy = await readAt(near.file, near.offset, near.size)
              if (copy !== undefined && sha256(copy) === chunk.digest) {
                data = copy
                result.reused += copy.length
              }
            }
            if (data === undefined) {
              if (scratch.length < chunk.blobSize) scratch = Buffer.allocUnsafe(Math.max(chunk.blobSize, MAX_CHUNK))
              data = await fetchBlob(client, chunk, options, scratch, inflater, (bytes) => (result.received += bytes))
            }
            const pieces = [data]
            // Written before this worker takes its next blob into the same scratch buffer.
            await Promise.all(targets.get(index)!.map((place) => writeAllAt(place.handle, pieces, place.offset)))
            // Recorded only once its bytes are written, in order on one open handle (no open/close per chunk).
            journalled = journalled.then(() => journalHandle.write(`${chunk.digest}\n`)).then(() => undefined)
            progress += chunk.size
            report()
          }
        }
        // Every worker has stopped (none still writing) before the files are closed.
        const outcomes = await Promise.allSettled(Array.from({length: CONCURRENCY}, () => worker()))
        await journalled
        for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason
        for (const disk of disks) {
          const head = Buffer.alloc(QCOW2_HEADER_BYTES)
          const {bytesRead} = await disk.handle.read(head, 0, head.length, 0)
          const facts = qcow2Facts(head.subarray(0, bytesRead), disk.size)
          if (facts !== undefined) result.diskFacts.set(disk.file, facts)
        }
      } finally {
        for (const handle of handles) await handle.close().catch(() => undefined)
      }
      const dir = path.join(paths.boxes, `.tmp-${process.pid}-oci${randomBytes(4).toString('hex')}`)
      await rename(work, dir)
      await rm(journal, {force: true})
      return {...result, present: undefined, dir, release}
    } catch (error) {
      await release()
      throw error
    }
  } catch (error) {
    if (error instanceof UserError || !isTransient(error)) throw error
    throw client.networkError(error)
  } finally {
    client.close()
  }
}
