import {createReadStream} from 'node:fs'
import path from 'node:path'

import {Header} from 'tar/header'
import {Pax} from 'tar/pax'

import {UserError} from '../errors/errors.js'

/**
 * The bytes of a tar archive (ustar, with a pax header for what ustar cannot hold), written
 * piece by piece so that each piece can be compressed or stored on its own: an entry's header,
 * its data with the padding to 512 bytes, and the end-of-archive blocks.
 */

const BLOCK = 512

export interface TarFile {
  /** The name in the archive (relative, '/'-separated). */
  name: string
  /** Where its bytes are read from. */
  source: string
  size: number
  mtime: Date
}

/** The header block(s) of a regular file: a pax header first when ustar cannot hold its name or size. */
export function tarHeader(file: TarFile): Buffer {
  const fields = {path: file.name, mode: 0o644, uid: 0, gid: 0, size: file.size, mtime: file.mtime, type: 'File' as const}
  const header = new Header(fields)
  const needPax = header.encode()
  if (!needPax) return header.block!
  return Buffer.concat([new Pax({path: file.name, size: file.size, mtime: file.mtime}).encode(), header.block!])
}

/** Zeros that pad `size` bytes of data to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK)
}

/** The end of an archive: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK)
}

/** A file's data and padding; fails when the file no longer has the size its header gave. */
export async function* tarData(file: TarFile, chunkSize = 1 << 20): AsyncIterable<Buffer> {
  let read = 0
  if (file.size > 0) {
    for await (const chunk of createReadStream(file.source, {highWaterMark: chunkSize, end: file.size - 1})) {
      read += (chunk as Buffer).length
      yield chunk as Buffer
    }
  }
  if (read !== file.size) throw fileChanged(file, read)
  yield tarPadding(file.size)
}

/** The error of a file that no longer has the size its header gave (`read` bytes were there). */
export function fileChanged(file: TarFile, read: number): UserError {
  return new UserError(`${path.basename(file.source)} changed while it was archived (${file.size} bytes expected, ${read} read)`, {
    code: 'FILE_CHANGED',
    hint: 'Nothing was written; run the command again.',
  })
}
