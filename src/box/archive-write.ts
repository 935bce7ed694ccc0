import {createHash} from 'node:crypto'
import {createWriteStream, existsSync} from 'node:fs'
import {rename, rm, stat} from 'node:fs/promises'
import type {Duplex} from 'node:stream'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGzip} from 'node:zlib'

import {UserError} from '../errors/errors.js'
import {spawnFilter} from '../process/pipe.js'

/**
 * The one writer of .box archives (vm box repackage, vm package): a tar of files from one
 * directory, metadata.json first, compressed, hashed as it is written, and renamed into place
 * only once complete (a failure leaves no file behind).
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

async function compressor(compression: ArchiveCompression): Promise<Duplex> {
  if (compression === 'gzip') return createGzip({level: 6})
  return spawnFilter('zstd', ['-q', '-1', '-T0', '-c'], 'Install zstd (apt-get install zstd).')
}

export async function writeBoxArchive(options: BoxArchiveOptions): Promise<BoxArchiveResult> {
  const {create} = await import('tar')
  const hash = createHash('sha256')
  const temp = `${options.file}.${process.pid}.tmp`
  try {
    const archive = create({cwd: options.dir, portable: true}, options.files)
    const digest = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        callback(null, chunk)
      },
    })
    await pipeline(archive, await compressor(options.compression), digest, createWriteStream(temp))
    await rename(temp, options.file)
  } finally {
    await rm(temp, {force: true})
  }
  return {file: options.file, size: (await stat(options.file)).size, sha256: hash.digest('hex')}
}
