import {createHash} from 'node:crypto'
import {createWriteStream, existsSync} from 'node:fs'
import {rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {UserError} from '../errors/errors.js'
import {referencedFiles} from './metadata.js'
import {boxesRoot, escapeBoxName, listBoxes, METADATA_FILE, providerRank} from './store.js'

export interface RepackageOptions {
  name: string
  version: string
  provider?: string | undefined
  architecture?: string | undefined
  /** The .box file to write; default `<name>-<version>-<arch>.box` in cwd. */
  output?: string | undefined
  cwd: string
  force?: boolean | undefined
  env?: NodeJS.ProcessEnv | undefined
}

export interface RepackageResult {
  file: string
  size: number
  sha256: string
}

/** Writes a stored box back out as a gzip-compressed .box archive (metadata.json first). */
export async function repackageBox(options: RepackageOptions): Promise<RepackageResult> {
  const candidates = (await listBoxes(boxesRoot(options.env)))
    .filter(
      (box) =>
        box.name === options.name &&
        box.version === options.version &&
        (options.provider === undefined || box.provider === options.provider) &&
        (options.architecture === undefined || box.architecture === options.architecture),
    )
    .sort((a, b) => providerRank(a.provider) - providerRank(b.provider))
  const box = candidates[0]
  if (box === undefined) {
    throw new UserError(`Box ${options.name} ${options.version} is not stored`, {
      code: 'BOX_NOT_FOUND',
      hint: '"vm box list" shows the stored boxes and versions.',
    })
  }
  const base = escapeBoxName(box.name).replaceAll('-VAGRANTSLASH-', '-')
  const file = path.resolve(options.cwd, options.output ?? `${base}-${box.version}-${box.architecture}.box`)
  if (existsSync(file) && options.force !== true) {
    throw new UserError(`${file} already exists`, {
      code: 'FILE_EXISTS',
      hint: 'Pass --force to overwrite it, or --output to pick another name.',
    })
  }
  const {create} = await import('tar')
  const files = [METADATA_FILE, ...referencedFiles(box.metadata)]
  const hash = createHash('sha256')
  const temp = `${file}.${process.pid}.tmp`
  try {
    const archive = create({gzip: {level: 6}, cwd: box.dir, portable: true}, files)
    const digest = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        callback(null, chunk)
      },
    })
    await pipeline(archive, digest, createWriteStream(temp))
    await rename(temp, file)
  } finally {
    await rm(temp, {force: true})
  }
  return {file, size: (await stat(file)).size, sha256: hash.digest('hex')}
}
