import {createHash, type Hash} from 'node:crypto'
import {createReadStream, createWriteStream, existsSync} from 'node:fs'
import {type FileHandle, open, rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import type {Duplex} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGzip} from 'node:zlib'

import {UserError} from '../errors/errors.js'
import {spawnFilter} from '../process/pipe.js'
import type {TarFile} from './tar-stream.js'
import {rawZstdFileFrame, rawZstdFrame} from './zstd-raw.js'

/**
 * The one writer of .box archives (vm box repackage, vm package): a tar of files from one
 * directory, metadata.json first, compressed, hashed as it is written, and renamed into place
 * only once complete (a failure leaves no file behind).
 *
 * With zstd the archive is a sequence of frames: files compressed already (`stored`) go in as
 * raw blocks, the rest through `zstd -1`, each run of them a frame of its own. Runs that need no
 * `later` file are compressed at once, in parallel with whatever the caller still does before
 * `later.ready` resolves, and written to the output (hashed) in archive order as soon as they
 * are there: with the later files last, only they are left to write once they are ready.
 */
export type ArchiveCompression = 'gzip' | 'zstd'

export interface BoxArchiveOptions {
  /** The directory the files are read from. */
  dir: string
  /** Paths relative to `dir`, in archive order (metadata.json first). */
  files: string[]
  /** The .box file to write. */
  file: string
  /** gzip (level 6): read everywhere; zstd (level 1, all cores): far faster on already-compressed disks. */
  compression: ArchiveCompression
  /** Files compressed already (a qcow2 of compressed clusters): with zstd, stored as they are. */
  stored?: readonly string[] | undefined
  /**
   * Files that may not exist yet: read only once `ready` resolves (the others meanwhile). When
   * `ready` rejects, so does the writer, with the same reason, and nothing is left behind.
   */
  later?: {files: readonly string[]; ready: Promise<unknown>} | undefined
}

export interface BoxArchiveResult {
  file: string
  size: number
  sha256: string
}

/** Refuses to overwrite `file` unless `force`; `flag` names the option that picks another name. */
export function refuseExistingOutput(file: string, force: boolean | undefined, flag = '--output'): void {
  if (existsSync(file) && force !== true) {
    throw new UserError(`${file} already exists`, {
      code: 'FILE_EXISTS',
      hint: `Pass --force to overwrite it, or ${flag} to pick another name.`,
    })
  }
}

/** A run of the archive: headers and data compressed together, or one stored file's header and data. */
interface Run {
  kind: 'compress' | 'store'
  /** The files whose header the run holds (in order, each header followed by the file's data when in `data`). */
  headers: string[]
  data: string[]
  end: boolean
}

/**
 * Splits the archive into runs: a stored file, header and data, is a run of its own (so that
 * what precedes it needs nothing of it: a file not there yet holds back only itself and what
 * follows); the end of the archive is in the last run.
 */
export function archiveRuns(files: readonly string[], stored: ReadonlySet<string>): Run[] {
  const runs: Run[] = []
  let current: Run = {kind: 'compress', headers: [], data: [], end: false}
  for (const name of files) {
    if (!stored.has(name)) {
      current.headers.push(name)
      current.data.push(name)
      continue
    }
    if (current.headers.length > 0) runs.push(current)
    runs.push({kind: 'store', headers: [name], data: [name], end: false})
    current = {kind: 'compress', headers: [], data: [], end: false}
  }
  current.end = true
  runs.push(current)
  return runs
}

/** Smaller runs are stored as they are: compressing a few KiB is not worth starting zstd. */
const SMALL_RUN = 64 * 1024

async function compressor(compression: ArchiveCompression): Promise<Duplex> {
  if (compression === 'gzip') return createGzip({level: 6})
  return spawnFilter('zstd', ['-q', '-1', '-T0', '-c'], 'Install zstd (apt-get install zstd).')
}

async function describe(dir: string, name: string): Promise<TarFile> {
  const source = path.join(dir, name)
  const info = await stat(source)
  return {name, source, size: info.size, mtime: info.mtime}
}

/** The tar bytes of a run (headers and data in archive order). */
async function* runBytes(run: Run, files: ReadonlyMap<string, TarFile>): AsyncIterable<Buffer> {
  // Loaded here: only the commands that write archives need it.
  const {tarData, tarEnd, tarHeader} = await import('./tar-stream.js')
  for (const name of run.headers) {
    yield tarHeader(files.get(name)!)
    if (run.data.includes(name)) yield* tarData(files.get(name)!)
  }
  if (run.end) yield tarEnd()
}

/**
 * A stored run (one file, header and data) as one zstd frame of raw blocks, the file read
 * straight into reused buffers: each chunk is valid only until the next is asked for (see
 * writeInTurn).
 */
async function* storedRun(run: Run, files: ReadonlyMap<string, TarFile>): AsyncIterable<Buffer> {
  const {fileChanged, tarEnd, tarHeader, tarPadding} = await import('./tar-stream.js')
  const file = files.get(run.headers[0]!)!
  const tail = run.end ? Buffer.concat([tarPadding(file.size), tarEnd()]) : tarPadding(file.size)
  yield* rawZstdFileFrame(tarHeader(file), file.source, file.size, tail, (read) => fileChanged(file, read))
}

/**
 * Writes every chunk of `source` to `file` and hashes it, each written before the next is asked
 * for (a stored run reuses its buffers, storedRun): the hash is computed while the chunk is
 * being written, and the stored run reads its next chunk meanwhile.
 */
async function writeInTurn(source: AsyncIterable<Buffer>, file: string, hash: Hash, signal: AbortSignal): Promise<void> {
  const output = await open(file, 'w')
  try {
    for await (const chunk of source) {
      signal.throwIfAborted()
      const writing = writeFully(output, chunk)
      hash.update(chunk)
      await writing
    }
  } finally {
    await output.close()
  }
}

async function writeFully(output: FileHandle, chunk: Buffer): Promise<void> {
  let at = 0
  while (at < chunk.length) at += (await output.write(chunk, at, chunk.length - at)).bytesWritten
}

function hashing(hash: Hash): (source: AsyncIterable<Buffer>) => AsyncIterable<Buffer> {
  return async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk)
      yield chunk
    }
  }
}

export async function writeBoxArchive(options: BoxArchiveOptions): Promise<BoxArchiveResult> {
  const hash = createHash('sha256')
  const temp = `${options.file}.${process.pid}.tmp`
  const parts: string[] = []
  const abort = new AbortController()
  const signal = abort.signal
  const later = new Set(options.later?.files ?? [])
  const stored = options.compression === 'zstd' ? new Set(options.stored ?? []) : new Set<string>()
  const runs = archiveRuns(options.files, stored)
  const described = new Map<string, TarFile>()
  const ready = async (run: Run): Promise<void> => {
    const names = [...run.headers, ...run.data]
    if (names.some((name) => later.has(name))) await options.later!.ready
    for (const name of names) if (!described.has(name)) described.set(name, await describe(options.dir, name))
  }

  // Each compressed run of several is written to a part file as soon as its files are there,
  // except the first: nothing precedes it, so it goes into the output as it is compressed (see
  // archive()), never written twice.
  const produced = runs.map(async (run, index): Promise<string | 'direct' | undefined> => {
    if (runs.length === 1 || run.kind === 'store') return undefined
    await ready(run)
    const size = [...run.data].reduce((sum, name) => sum + described.get(name)!.size, 0)
    if (size < SMALL_RUN) return undefined
    if (index === 0) return 'direct'
    const part = `${temp}.${index}`
    parts.push(part)
    await pipeline(runBytes(run, described), await compressor(options.compression), createWriteStream(part), {signal})
    return part
  })
  // The first failure is the reason; what it then stops fails with an AbortError.
  let failure: unknown
  for (const promise of produced)
    promise.catch((error: unknown) => {
      if (!signal.aborted) failure ??= error
      abort.abort()
    })
  /** A run's bytes through the compressor, as they come out of it. */
  async function* compressed(run: Run): AsyncIterable<Buffer> {
    const compress = await compressor(options.compression)
    const feeding = pipeline(runBytes(run, described), compress, {signal, end: true})
    feeding.catch((error: unknown) => compress.destroy(error as Error))
    yield* compress as AsyncIterable<Buffer>
    await feeding
  }
  try {
    async function* archive(): AsyncIterable<Buffer> {
      for (const [index, run] of runs.entries()) {
        const part = await produced[index]!
        if (part === 'direct') yield* compressed(run)
        else if (part !== undefined) yield* createReadStream(part, {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>
        else if (runs.length > 1) {
          await ready(run)
          yield* run.kind === 'store' ? storedRun(run, described) : rawZstdFrame(runBytes(run, described))
        }
      }
    }
    if (runs.length === 1) {
      await ready(runs[0]!)
      const compress = await compressor(options.compression)
      await pipeline(runBytes(runs[0]!, described), compress, hashing(hash), createWriteStream(temp), {signal})
    } else await writeInTurn(archive(), temp, hash, signal)
    await rename(temp, options.file)
  } catch (error) {
    if (!signal.aborted) failure ??= error
    abort.abort()
    throw failure ?? error
  } finally {
    await Promise.allSettled(produced)
    for (const part of [temp, ...parts]) await rm(part, {force: true})
  }
  return {file: options.file, size: (await stat(options.file)).size, sha256: hash.digest('hex')}
}
