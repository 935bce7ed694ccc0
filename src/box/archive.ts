import {createHash, type Hash} from 'node:crypto'
import {constants} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import path from 'node:path'
import {Readable, type Duplex} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'

import {ExternalError, UserError} from '../errors/errors.js'
import {spawnFilter} from '../process/pipe.js'
import {identifyImage, IDENTIFY_BYTES, rawSizeProblem} from './disk-signature.js'
import {fsUserError, isFsError, onUserData, writeAll} from './fs-errors.js'
import {extractTar} from './tar-extract.js'
import {qcow2Limit, UnpackBudget, type UnpackLimits} from './unpack-budget.js'

/**
 * One pass over a box's bytes: hash them as they stream in, detect and undo compression
 * (by magic bytes), and unpack the tar into a directory, or keep a bare disk image (only one
 * that is recognizably a disk), or collect a catalog. Only regular files and directories with
 * safe relative paths are written; any other entry rejects the whole archive. What is written
 * is bounded (UnpackBudget), and every failure is a UserError.
 */
export type Compression = 'bzip2' | 'gzip' | 'none' | 'xz' | 'zstd'
export type ContentKind = 'catalog' | 'image' | 'tar'

export interface UnpackResult {
  kind: ContentKind
  compression: Compression
  /** Hex digest of the bytes as received. */
  digest: string
  bytes: number
  /** The catalog text when kind is catalog. */
  text?: string | undefined
  /** Files written, relative to the directory. */
  files: string[]
}

export interface UnpackOptions {
  dir: string
  checksumType: string
  /** What to call the source in messages. */
  where: string
  signal?: AbortSignal | undefined
  /** Bounds on what unpacking may write (see unpack-budget.ts). */
  limits?: UnpackLimits | undefined
}

export const IMAGE_FILE = 'box.img'
const CATALOG_LIMIT = 16 << 20

export function detectCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz'
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2'
  return 'none'
}

/** What decompressed content is: a tar, a qcow2 or raw disk image, or catalog JSON. */
export function detectContent(head: Buffer): ContentKind {
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar'
  if (head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'image'
  if (/^\s*\{/.test(head.subarray(0, 64).toString('latin1'))) return 'catalog'
  return 'image'
}

export async function decompressor(compression: Compression): Promise<Duplex | undefined> {
  switch (compression) {
    case 'gzip':
      return createGunzip({chunkSize: 1 << 20})
    case 'zstd':
      return spawnFilter('zstd', ['-dc', '-q'], 'Install zstd (apt-get install zstd) to add zstd-compressed boxes.')
    case 'xz':
      return spawnFilter('xz', ['-dc', '-q'], 'Install xz-utils to add xz-compressed boxes.')
    case 'bzip2':
      return spawnFilter('bzip2', ['-dc'], 'Install bzip2 to add bzip2-compressed boxes.')
    case 'none':
      return undefined
  }
}

/** Hashes chunks on their way through; reads until `head` has at least `need` bytes. */
async function* hashing(source: AsyncIterable<Buffer>, hash: Hash, counter: {bytes: number}): AsyncIterable<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk)
    counter.bytes += chunk.length
    yield chunk
  }
}

/** The first `need` bytes of a stream (fewer at its end), and a stream of everything. */
async function peek(source: AsyncIterable<Buffer>, need: number): Promise<{head: Buffer; all: AsyncIterable<Buffer>}> {
  const iterator = source[Symbol.asyncIterator]()
  const taken: Buffer[] = []
  let size = 0
  let done = false
  while (size < need) {
    const next = await iterator.next()
    if (next.done === true) {
      done = true
      break
    }
    taken.push(next.value)
    size += next.value.length
  }
  async function* all(): AsyncIterable<Buffer> {
    yield* taken
    if (done) return
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) return
      yield next.value
    }
  }
  return {head: Buffer.concat(taken), all: all()}
}

function notADisk(where: string, what: string): UserError {
  return new UserError(`${where} is not a box, a box catalog or a disk image: it looks like ${what}`, {
    code: 'BOX_INVALID',
    hint: 'Give a .box file (a tar with metadata.json), a qcow2 or raw disk image, or a catalog; check the URL if a web page came back.',
    data: {looksLike: what},
  })
}

/** Writes a bare disk image to `file`, within the budget and the bound its qcow2 header sets. */
async function writeImage(content: AsyncIterable<Buffer>, file: string, options: UnpackOptions, budget: UnpackBudget): Promise<void> {
  const inner = await peek(content, IDENTIFY_BYTES)
  const identity = identifyImage(inner.head)
  if (!identity.disk) throw notADisk(options.where, identity.what)
  const limit = identity.virtualSize === undefined ? undefined : qcow2Limit(identity.virtualSize)
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await onUserData('write the disk image', file, () => open(file, flags, 0o644))
  let written = 0
  try {
    for await (const chunk of inner.all) {
      if (limit !== undefined && written + chunk.length > limit)
        throw UnpackBudget.fileLimitError(options.where, IMAGE_FILE, limit, identity.virtualSize ?? 0)
      await budget.take(chunk.length)
      await onUserData('write the disk image', file, () => writeAll(handle, chunk))
      written += chunk.length
    }
  } finally {
    await handle.close()
  }
  const problem = identity.format === 'raw' ? rawSizeProblem(written) : undefined
  if (problem !== undefined) throw notADisk(options.where, `${identity.what}, but ${problem}`)
}

/** Streams `source` into `options.dir`; see the module comment. */
export async function unpackStream(source: AsyncIterable<Buffer>, options: UnpackOptions): Promise<UnpackResult> {
  const hash = createHash(options.checksumType)
  const counter = {bytes: 0}
  const raw = await peek(hashing(source, hash, counter), 8)
  if (raw.head.length === 0) throw new UserError(`${options.where} is empty`, {code: 'BOX_INVALID'})
  const compression = detectCompression(raw.head)
  const filter = await decompressor(compression)
  const files: string[] = []
  let kind: ContentKind = 'tar'
  let text: string | undefined
  const consume = async (content: AsyncIterable<Buffer>): Promise<void> => {
    const inner = await peek(content, 512)
    kind = detectContent(inner.head)
    if (kind === 'catalog' && compression === 'none') {
      const parts: Buffer[] = []
      let size = 0
      for await (const chunk of inner.all) {
        size += chunk.length
        if (size > CATALOG_LIMIT) throw new UserError(`${options.where} is neither a box nor a catalog`, {code: 'BOX_INVALID'})
        parts.push(chunk)
      }
      text = Buffer.concat(parts).toString('utf8')
      return
    }
    if (kind === 'catalog') kind = 'image'
    await onUserData('create the directory', options.dir, () => mkdir(options.dir, {recursive: true}))
    const budget = await UnpackBudget.start(options.dir, options.where, options.limits)
    if (kind === 'image') {
      await writeImage(inner.all, path.join(options.dir, IMAGE_FILE), options, budget)
      files.push(IMAGE_FILE)
      return
    }
    await extractTar(inner.all, {dir: options.dir, where: options.where, budget, files})
  }
  // pipeline() may reject before its last stage has settled; the caller deletes the directory
  // next, so wait for the sink too, or a late write could recreate it.
  let sinkDone: Promise<void> = Promise.resolve()
  const sink = (content: AsyncIterable<Buffer>): Promise<void> => {
    sinkDone = consume(content)
    return sinkDone
  }
  const input = Readable.from(raw.all, {objectMode: false})
  try {
    // No signal here: the source stops on abort, and the error then unwinds every stage
    // (the sink included) before this returns, so no write outlives the call.
    if (filter === undefined) await pipeline(input, sink)
    else await pipeline(input, filter, sink)
  } catch (error) {
    await sinkDone.catch(() => undefined)
    throw describeFailure(error, options.where, compression)
  }
  return {kind, compression, digest: hash.digest('hex'), bytes: counter.bytes, text, files}
}

function corrupt(where: string, format: string, detail: string, cause: unknown): UserError {
  return new UserError(`The archive from ${where} is truncated or corrupt (${format}: ${detail})`, {
    code: 'BOX_CORRUPT',
    hint: 'Download it again (add --clean to discard a partial download), or ask its publisher for a fresh copy.',
    cause,
  })
}

function describeFailure(error: unknown, where: string, compression: Compression): unknown {
  if (error instanceof UserError || (error as Error).name === 'AbortError') return error
  // The decompressor rejected its input: the same failure as a bad gzip stream, whatever it said.
  if (error instanceof ExternalError && error.program === compression && error.code !== 'PROGRAM_MISSING') {
    const said = error.stderrTail
      .split('\n')
      .map((line) => line.replace(new RegExp(`^${compression}: `), '').trim())
      .find((line) => line !== '')
    return corrupt(where, compression, said === undefined || said === '' ? 'the data ends early or is damaged' : said, error)
  }
  if (isFsError(error)) return fsUserError(error, `unpack ${where} into`)
  const code = (error as NodeJS.ErrnoException).code
  if (
    code === 'Z_BUF_ERROR' ||
    code === 'Z_DATA_ERROR' ||
    /TAR_BAD_ARCHIVE|TAR_ENTRY_ERROR|Truncated|unexpected end/i.test(`${code} ${(error as Error).message}`)
  ) {
    return corrupt(where, compression === 'none' ? 'tar' : compression, (error as Error).message, error)
  }
  return error
}
