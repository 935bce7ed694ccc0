import {constants} from 'node:fs'
import {copyFile, mkdir, readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {parseBoxMetadata, referencedFiles, SUPPORTED_PROVIDERS, type BoxMetadata} from './metadata.js'
import {METADATA_FILE, providerRank, unescapeBoxName, type BoxKey} from './store.js'
import {isValidVersion, newestSatisfying} from './version.js'

/**
 * Unpacked boxes: a folder holding metadata.json and the files it names (box.img, the disks
 * of a v2 multi-disk box, kernel and initrd), as in Vagrant's own store
 * (~/.vagrant.d/boxes/NAME/VERSION/[ARCH/]PROVIDER/). Given Vagrant's NAME folder or a
 * VERSION folder, the newest version (meeting --box-version) and the preferred provider
 * and architecture are taken.
 */
export interface BoxFolder {
  /** The folder holding metadata.json. */
  dir: string
  /** What the folder's place in Vagrant's layout says (used when metadata.json names none). */
  layout: Partial<BoxKey>
}

export interface FolderChoice {
  constraint?: string | undefined
  provider?: string | undefined
  architecture: string
}

function folderError(dir: string, problem: string, hint?: string): UserError {
  return new UserError(`Cannot add the folder ${dir}: ${problem}`, {
    code: 'BOX_INVALID',
    hint:
      hint ??
      'An unpacked box is a folder holding metadata.json and the disks it names (box.img), such as ~/.vagrant.d/boxes/NAME/VERSION/libvirt.',
  })
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() === true
}

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true})
  return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name)
}

/** Name, version and architecture from .../NAME/VERSION/[ARCH/]PROVIDER (Vagrant's store). */
export function layoutOf(dir: string): Partial<BoxKey> {
  const parts = path.resolve(dir).split(path.sep)
  const provider = parts.at(-1)
  if (provider === undefined || !(SUPPORTED_PROVIDERS as readonly string[]).includes(provider)) return {}
  const [one, two, three] = [parts.at(-2), parts.at(-3), parts.at(-4)]
  if (one !== undefined && two !== undefined && isValidVersion(one)) {
    const name = unescapeBoxName(two)
    return name === undefined ? {version: one} : {name, version: one}
  }
  if (one !== undefined && two !== undefined && three !== undefined && isValidVersion(two)) {
    const name = unescapeBoxName(three)
    return name === undefined ? {version: two, architecture: one} : {name, version: two, architecture: one}
  }
  return {}
}

/** The provider folders under a VERSION folder: PROVIDER/ or ARCH/PROVIDER/, best first. */
async function providerFolders(dir: string, choice: FolderChoice): Promise<string[]> {
  const found: Array<{dir: string; provider: string; architecture: string | undefined}> = []
  for (const child of await subdirs(dir)) {
    const full = path.join(dir, child)
    if (await isFile(path.join(full, METADATA_FILE))) found.push({dir: full, provider: child, architecture: undefined})
    else
      for (const leaf of await subdirs(full).catch(() => [] as string[]))
        if (await isFile(path.join(full, leaf, METADATA_FILE)))
          found.push({dir: path.join(full, leaf), provider: leaf, architecture: child})
  }
  const usable = found.filter(
    (entry) =>
      (SUPPORTED_PROVIDERS as readonly string[]).includes(entry.provider) &&
      (choice.provider === undefined || entry.provider === choice.provider) &&
      (entry.architecture === undefined || entry.architecture === choice.architecture),
  )
  // The host's architecture named explicitly beats a folder that names none.
  const rank = (entry: (typeof usable)[number]) => providerRank(entry.provider) * 2 + (entry.architecture === undefined ? 1 : 0)
  return usable.sort((a, b) => rank(a) - rank(b)).map((entry) => entry.dir)
}

/** Finds the box folder `dir` stands for (see BoxFolder); the error names what is missing. */
export async function resolveBoxFolder(dir: string, choice: FolderChoice): Promise<BoxFolder> {
  if (await isFile(path.join(dir, METADATA_FILE))) return {dir, layout: layoutOf(dir)}
  const children = await subdirs(dir)
  const entries = await readdir(dir)
  if (entries.length === 0) throw folderError(dir, 'it is empty')
  const versions = children.filter((child) => isValidVersion(child))
  const wanted = [
    choice.provider ?? SUPPORTED_PROVIDERS.join(' or '),
    choice.architecture,
    ...(choice.constraint === undefined ? [] : [`version ${choice.constraint}`]),
  ].join(', ')
  if (versions.length > 0) {
    // Vagrant's NAME folder: the newest version that has a usable provider folder.
    let remaining = versions
    for (;;) {
      const version = newestSatisfying(remaining, choice.constraint)
      if (version === undefined) break
      const leaves = await providerFolders(path.join(dir, version), choice)
      if (leaves.length > 0) return {dir: leaves[0]!, layout: layoutOf(leaves[0]!)}
      remaining = remaining.filter((entry) => entry !== version)
    }
    throw folderError(
      dir,
      `none of its versions (${versions.join(', ')}) holds a box for ${wanted}`,
      'Each version folder should hold a provider folder (libvirt or qemu) with metadata.json; try --box-version, --provider or --architecture.',
    )
  }
  const leaves = await providerFolders(dir, choice)
  if (leaves.length > 0) return {dir: leaves[0]!, layout: layoutOf(leaves[0]!)}
  throw folderError(dir, `it has no ${METADATA_FILE}`)
}

/**
 * Reads the folder's metadata.json and checks that every file it names is there; the error
 * names the folder and each missing file. The full checks (disk formats, backing files) run
 * on the copy, as for an archive.
 */
export async function readBoxFolder(dir: string): Promise<BoxMetadata> {
  let text: string
  try {
    text = await readFile(path.join(dir, METADATA_FILE), 'utf8')
  } catch {
    throw folderError(dir, `it has no ${METADATA_FILE}`)
  }
  const metadata = parseBoxMetadata(text, dir)
  const missing: string[] = []
  for (const file of referencedFiles(metadata)) if (!(await isFile(path.join(dir, file)))) missing.push(file)
  if (missing.length > 0)
    throw folderError(
      dir,
      `${METADATA_FILE} names ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not in the folder`,
      'Copy the missing disks into the folder, or fix metadata.json.',
    )
  return metadata
}

/**
 * Copies metadata.json and the files it names from `from` into `to` (a clone where the
 * filesystem can); `take` is told each file's size first and may refuse it by throwing.
 */
export async function copyBoxFolder(
  from: string,
  to: string,
  metadata: BoxMetadata,
  take: (bytes: number) => Promise<void>,
): Promise<number> {
  let bytes = 0
  for (const file of [METADATA_FILE, ...referencedFiles(metadata)]) {
    const size = (await stat(path.join(from, file))).size
    await take(size)
    await mkdir(path.dirname(path.join(to, file)), {recursive: true})
    await copyFile(path.join(from, file), path.join(to, file), constants.COPYFILE_FICLONE)
    bytes += size
  }
  return bytes
}
