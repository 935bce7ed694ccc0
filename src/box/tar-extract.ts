import {constants} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {quoteValue} from './fields.js'
import {onUserData, writeAll} from './fs-errors.js'
import {parseBoxMetadata, isSafeRelativePath, type BoxMetadata} from './metadata.js'
import {declaredBound, qcow2Limit, UnpackBudget} from './unpack-budget.js'
import {qcow2VirtualSize} from './disk-signature.js'

/**
 * Unpacks a box's tar stream, one entry at a time: an entry's directory and file are complete
 * before the next entry touches the disk, so entries that clash (a file and a directory of one
 * name, a name given twice) fail on a clear message instead of racing. Only regular files and
 * directories with safe relative names are written, files with O_EXCL|O_NOFOLLOW; every byte
 * is counted against the UnpackBudget before it is written.
 */
export interface TarContext {
  dir: string
  where: string
  budget: UnpackBudget
  /** Files written, relative to dir. */
  files: string[]
  /** Set while an entry is being written: stops its writer when unpacking stops. */
  abort?: ((error: unknown) => void) | undefined
}

const METADATA = 'metadata.json'
const METADATA_LIMIT = 1 << 20
const NAME_PART_LIMIT = 255

function unsafe(where: string, problem: string): UserError {
  return new UserError(`Refusing the box from ${where}: ${problem}`, {
    code: 'BOX_UNSAFE',
    hint: 'A box archive may only hold regular files and directories with relative paths; ask its publisher for a clean box.',
  })
}

function invalid(where: string, problem: string): UserError {
  return new UserError(`Refusing the box from ${where}: ${problem}`, {
    code: 'BOX_INVALID',
    hint: 'The box is damaged or not made for the libvirt/qemu providers; ask its publisher for a fixed one.',
  })
}

interface TarEntry {
  path: string
  type: string
  size: number
  linkpath?: string | undefined
  resume(): unknown
  pause(): unknown
  on(event: 'data', listener: (chunk: Buffer) => void): unknown
  once(event: 'end' | 'error', listener: (error?: unknown) => void): unknown
}

/** Why an entry may not be written (unsafe: it would reach outside the box), or undefined. */
function entryProblem(entry: TarEntry, name: string, where: string): UserError | undefined {
  const shown = quoteValue(entry.path)
  if (!isSafeRelativePath(name)) return unsafe(where, `the entry ${shown} points outside the box`)
  if (entry.type === 'SymbolicLink' || entry.type === 'Link')
    return unsafe(where, `the entry ${shown} is a link (to ${quoteValue(entry.linkpath)})`)
  if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile' && entry.type !== 'Directory')
    return unsafe(where, `the entry ${shown} is a ${entry.type}, not a regular file`)
  // eslint-disable-next-line no-control-regex -- names with control characters are refused, not printed
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return invalid(where, `the entry ${shown} has control characters in its name`)
  if (name.split('/').some((part) => Buffer.byteLength(part) > NAME_PART_LIMIT))
    return invalid(where, `the entry ${shown} has a name longer than ${NAME_PART_LIMIT} bytes, more than filesystems allow`)
  return undefined
}

/** What metadata.json, once unpacked, says about the entries after it. */
interface Known {
  metadata: BoxMetadata | undefined
}

async function writeDirectory(target: string, name: string, context: TarContext): Promise<void> {
  await mkdir(target, {recursive: true}).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST' || error.code === 'ENOTDIR')
      throw invalid(context.where, `the archive holds both a file and a directory named ${quoteValue(name)}`)
    throw error
  })
}

async function writeFile(entry: TarEntry, name: string, target: string, context: TarContext, known: Known): Promise<void> {
  context.budget.check(entry.size)
  await mkdir(path.dirname(target), {recursive: true}).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST' || error.code === 'ENOTDIR')
      throw invalid(context.where, `the entry ${quoteValue(name)} lies under a file of the archive, not a directory`)
    throw error
  })
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await open(target, flags, 0o644).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST' || error.code === 'EISDIR')
      throw invalid(context.where, `the archive holds ${quoteValue(name)} twice, or as both a file and a directory`)
    throw error
  })
  context.files.push(name)
  const isMetadata = name === METADATA
  const disk = known.metadata?.disks.find((candidate) => path.normalize(candidate.path) === name)
  const kept: Buffer[] = []
  let fileLimit: number | undefined
  let virtualSize = 0
  let undeclared = false
  let written = 0
  // The first 32 bytes say whether this is a qcow2 image and how big it may be.
  const inspect = (head: Buffer): void => {
    const declared = qcow2VirtualSize(head)
    if (disk?.format === 'qcow2' && declared === undefined)
      throw invalid(context.where, `${name} is not a qcow2 image, though metadata.json says it is`)
    if (declared === undefined) {
      undeclared = known.metadata === undefined && !isMetadata
      if (undeclared) context.budget.checkUndeclared(entry.size, name)
      return
    }
    virtualSize = declared
    fileLimit = qcow2Limit(declared)
    if (entry.size > fileLimit) throw UnpackBudget.fileLimitError(context.where, name, fileLimit, declared)
  }
  const writeChunk = async (chunk: Buffer): Promise<void> => {
    if (fileLimit !== undefined && written + chunk.length > fileLimit)
      throw UnpackBudget.fileLimitError(context.where, name, fileLimit, virtualSize)
    if (isMetadata) {
      if (written + chunk.length > METADATA_LIMIT) throw invalid(context.where, 'its metadata.json is larger than 1 MiB')
      kept.push(chunk)
    }
    if (undeclared) context.budget.takeUndeclared(chunk.length, name)
    await context.budget.take(chunk.length)
    await writeAll(handle, chunk)
    written += chunk.length
  }
  let pending: Buffer[] | undefined = []
  const onChunk = async (chunk: Buffer): Promise<void> => {
    if (pending === undefined) return writeChunk(chunk)
    pending.push(chunk)
    const head = Buffer.concat(pending)
    if (head.length < 32 && head.length < entry.size) return
    pending = undefined
    inspect(head)
    await writeChunk(head)
  }
  try {
    await consumeEntry(entry, onChunk, context)
    if (pending !== undefined && pending.length > 0) {
      const head = Buffer.concat(pending)
      inspect(head)
      await writeChunk(head)
    }
  } finally {
    await handle.close()
  }
  if (isMetadata) readMetadata(Buffer.concat(kept).toString('utf8'), context, known)
}

/**
 * Feeds an entry's data to `onChunk` one chunk at a time, pausing the entry meanwhile (a
 * paused entry tells the parser to wait, a resumed one lets it go on). Rejects on the first
 * failure, or when unpacking stops (context.abort).
 */
function consumeEntry(entry: TarEntry, onChunk: (chunk: Buffer) => Promise<void>, context: TarContext): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false
    let inFlight: Promise<void> = Promise.resolve()
    const stop = (error: unknown) => {
      if (settled) return
      settled = true
      reject(error)
    }
    context.abort = stop
    entry.on('data', (chunk: Buffer) => {
      entry.pause()
      inFlight = onChunk(chunk).then(() => {
        if (!settled) entry.resume()
      }, stop)
    })
    entry.once('error', stop)
    entry.once('end', () => {
      void inFlight.then(() => {
        if (settled) return
        settled = true
        resolve()
      })
    })
  })
}

/** Reads metadata.json as soon as it is unpacked: its virtual_size bounds the rest. */
function readMetadata(text: string, context: TarContext, known: Known): void {
  known.metadata = parseBoxMetadata(text, context.where)
  const bound = declaredBound(known.metadata)
  if (bound !== undefined) context.budget.declare(bound.limit, bound.reason)
}

/** Unpacks the tar `content` into context.dir; see the module comment. */
export async function extractTar(content: AsyncIterable<Buffer>, context: TarContext): Promise<void> {
  const {Parser} = await import('tar')
  let failure: unknown
  let stop = () => {}
  const stopped = new Promise<void>((resolve) => (stop = resolve))
  const fail = (error: unknown) => {
    failure ??= error
    stop()
  }
  const known: Known = {metadata: undefined}
  let queue: Promise<void> = Promise.resolve()
  const handle = async (entry: TarEntry): Promise<void> => {
    if (failure !== undefined) return void entry.resume()
    const name = entry.path.replace(/^(\.\/)+/, '').replace(/\/+$/, '')
    if (entry.type === 'Directory' && (name === '' || name === '.')) return void entry.resume()
    const problem = entryProblem(entry, name, context.where)
    if (problem !== undefined) throw problem
    const target = path.join(context.dir, name)
    await onUserData(`unpack ${quoteValue(name)} into`, target, async () => {
      if (entry.type === 'Directory') {
        await writeDirectory(target, name, context)
        entry.resume()
      } else {
        await writeFile(entry, name, target, context, known)
      }
    })
  }
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      // Entries arrive one after another (the parser waits for each to be read); their disk
      // work is chained the same way.
      queue = queue
        .then(() => handle(entry as unknown as TarEntry))
        .catch((error: unknown) => {
          fail(error)
          entry.resume()
        })
    },
  })
  parser.on('error', (error: unknown) => fail(error))
  parser.on('warn', (code: string, message: string | Error) => {
    if (code === 'TAR_ENTRY_INVALID' || code === 'TAR_BAD_ARCHIVE' || code === 'TAR_ENTRY_ERROR')
      fail(Object.assign(new Error(String(message)), {code}))
  })
  const ended = new Promise<void>((resolve) => {
    for (const event of ['end', 'close', 'abort', 'error']) parser.once(event, () => resolve())
  })
  try {
    for await (const chunk of content) {
      if (failure !== undefined) break
      if (!parser.write(chunk)) await Promise.race([new Promise((resolve) => parser.once('drain', resolve)), ended, stopped])
    }
    if (failure === undefined) {
      parser.end()
      await Promise.race([ended, stopped])
    }
  } catch (error) {
    fail(error)
  } finally {
    // No write may outlive this call (the caller removes the directory next), and no writer
    // may wait for data that will never come.
    if (failure !== undefined) context.abort?.(failure)
    await queue
  }
  if (failure !== undefined) throw failure
}
