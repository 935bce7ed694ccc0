import {createHash, type Hash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import path from 'node:path'
import {Readable, type Duplex} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'

import {UserError} from '../cli/errors.js'
import {spawnFilter} from '../process/pipe.js'
import {isSafeRelativePath} from './metadata.js'

/**
 * One pass over a box's bytes: hash them as they stream in, detect and undo compression
 * (by magic bytes), and unpack the tar into a directory, or keep a bare disk image, or collect
 * a catalog. Only regular files and directories with safe relative paths are written; any
 * other entry rejects the whole archive.
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
      return spawnFilter('bzip2', ['-dc', '-q'], 'Install bzip2 to add bzip2-compressed boxes.')
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

function unsafe(where: string, problem: string): UserError {
  return new UserError(`Refusing the box from ${where}: ${problem}`, {
    code: 'BOX_UNSAFE',
    hint: 'A box archive may only hold regular files and directories with relative paths; ask its publisher for a clean box.',
  })
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
    await mkdir(options.dir, {recursive: true})
    if (kind === 'image') {
      await pipeline(Readable.from(inner.all), createWriteStream(path.join(options.dir, IMAGE_FILE), {mode: 0o644}), {
        signal: options.signal,
      })
      files.push(IMAGE_FILE)
      return
    }
    await extractTar(inner.all, options, files)
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

function describeFailure(error: unknown, where: string, compression: Compression): unknown {
  if (error instanceof UserError || (error as Error).name === 'AbortError') return error
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new UserError(`No space left on the disk while unpacking ${where}`, {
      code: 'DISK_FULL',
      hint: 'Free some space (vm box prune removes unused boxes) and try again.',
      cause: error,
    })
  }
  if (
    code === 'Z_BUF_ERROR' ||
    code === 'Z_DATA_ERROR' ||
    /TAR_BAD_ARCHIVE|TAR_ENTRY_ERROR|Truncated|unexpected end/i.test(`${code} ${(error as Error).message}`)
  ) {
    return new UserError(
      `The archive from ${where} is truncated or corrupt (${compression === 'none' ? 'tar' : compression}: ${(error as Error).message})`,
      {
        code: 'BOX_CORRUPT',
        hint: 'Download it again (add --clean to discard a partial download), or ask its publisher for a fresh copy.',
        cause: error,
      },
    )
  }
  return error
}

/** Unpacks a tar stream with node-tar's parser, writing only safe regular files and directories. */
async function extractTar(content: AsyncIterable<Buffer>, options: UnpackOptions, files: string[]): Promise<void> {
  const {Parser} = await import('tar')
  let failure: unknown
  let stopped = false
  const writes: Array<Promise<void>> = []
  const outs = new Set<ReturnType<typeof createWriteStream>>()
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      const name = entry.path.replace(/^(\.\/)+/, '')
      if (failure !== undefined || stopped) return entry.resume()
      if (entry.type === 'Directory' && (name === '' || name === '.' || name === './')) return entry.resume()
      if (!isSafeRelativePath(name)) failure = unsafe(options.where, `the entry "${entry.path}" points outside the box`)
      else if (entry.type === 'SymbolicLink' || entry.type === 'Link')
        failure = unsafe(options.where, `the entry "${entry.path}" is a link (to "${entry.linkpath}")`)
      else if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile' && entry.type !== 'Directory') {
        failure = unsafe(options.where, `the entry "${entry.path}" is a ${entry.type}, not a regular file`)
      }
      if (failure !== undefined || stopped) return entry.resume()
      const target = path.join(options.dir, name)
      if (entry.type === 'Directory') {
        writes.push(mkdir(target, {recursive: true}).then(() => undefined))
        return entry.resume()
      }
      files.push(name)
      writes.push(
        mkdir(path.dirname(target), {recursive: true}).then(
          () =>
            new Promise<void>((resolve, reject) => {
              if (stopped) return resolve()
              const out = createWriteStream(target, {mode: 0o644})
              outs.add(out)
              out.on('error', (error) => {
                failure ??= error
                entry.resume()
                reject(error)
              })
              out.on('close', () => resolve())
              entry.pipe(out)
            }),
        ),
      )
    },
  })
  parser.on('error', (error: unknown) => (failure ??= error))
  parser.on('warn', (code: string, message: string | Error) => {
    if (code === 'TAR_ENTRY_INVALID' || code === 'TAR_BAD_ARCHIVE' || code === 'TAR_ENTRY_ERROR')
      failure ??= Object.assign(new Error(String(message)), {code})
  })
  const ended = new Promise<void>((resolve) => {
    for (const event of ['end', 'close', 'abort', 'error']) parser.once(event, () => resolve())
  })
  try {
    for await (const chunk of content) {
      if (failure !== undefined) throw failure
      if (!parser.write(chunk)) await Promise.race([new Promise((resolve) => parser.once('drain', resolve)), ended])
    }
    parser.end()
    await ended
    await Promise.allSettled(writes)
  } catch (error) {
    // Stop every write before the caller removes the directory, so none recreates it.
    stopped = true
    for (const out of outs) out.destroy()
    await Promise.allSettled(writes)
    throw error
  }
  if (failure !== undefined) throw failure
}
