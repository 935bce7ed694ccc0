import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {refuseExistingOutput, writeBoxArchive, type BoxArchiveResult} from './archive-write.js'
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

export type RepackageResult = BoxArchiveResult

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
  refuseExistingOutput(file, options.force)
  const files = [METADATA_FILE, ...referencedFiles(box.metadata)]
  return writeBoxArchive({dir: box.dir, files, file, compression: 'gzip'})
}
