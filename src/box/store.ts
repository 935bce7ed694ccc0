import {existsSync} from 'node:fs'
import {mkdir, readdir, readFile, rename, rm, rmdir, stat} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {vmPaths} from '../state/paths.js'
import {BOX_NAME_RULE, isValidBoxName, isValidBoxVersion, isValidToken, NAME_SLASH, quoteValue} from './fields.js'
import {parseBoxMetadata, type BoxMetadata, type DiskFormat} from './metadata.js'
import {compareVersions, newestSatisfying} from './version.js'

/**
 * The box store: `<boxes dir>/<name>/<version>/<architecture>/<provider>/`, the name with "/"
 * written as "-VAGRANTSLASH-" like Vagrant. A directory there is a complete box or absent:
 * boxes are unpacked into `.tmp-*` beside the store and renamed into place.
 */
export const METADATA_FILE = 'metadata.json'
/** Where a stored box came from (for outdated and update). */
export const SOURCE_FILE = 'source.json'

export interface BoxSource {
  /** The URL or path the archive was read from. */
  url: string
  /** The catalog that offered it, when there was one. */
  catalogUrl?: string | undefined
  checksumType?: string | undefined
  checksum?: string | undefined
  addedAt: string
  /** A box pulled from an OCI registry: its manifest digest and recipe (see oci/pull.ts). */
  oci?: {reference: string; digest: string; recipe: unknown} | undefined
}

export interface BoxKey {
  name: string
  version: string
  architecture: string
  provider: string
}

/** A box in the store, with absolute paths for the machine code. */
export interface StoredBox extends BoxKey {
  dir: string
  disks: Array<{path: string; format: DiskFormat; name?: string | undefined}>
  kernel: string | undefined
  initrd: string | undefined
  cmdline: string | undefined
  firmware: string | undefined
  sshUser: string | undefined
  metadata: BoxMetadata
  source: BoxSource | undefined
  /** Bytes on disk. */
  size: number
}

/**
 * The store directory of a box name. Injective: names that could collide with the escape are
 * refused (see NAME_SLASH), so "a/b" and "a-VAGRANTSLASH-b" never share a directory.
 */
export function escapeBoxName(name: string): string {
  if (!isValidBoxName(name))
    throw new UserError(`${quoteValue(name)} is not a usable box name`, {code: 'BOX_NAME', hint: `Use ${BOX_NAME_RULE}.`})
  return name.replaceAll('/', NAME_SLASH)
}

/** The box name a store directory holds, or undefined when the directory cannot be one. */
export function unescapeBoxName(dirName: string): string | undefined {
  const name = dirName.replaceAll(NAME_SLASH, '/')
  return isValidBoxName(name) && escapeBoxName(name) === dirName ? name : undefined
}

/** Whether a store key names a box vm could have stored (every part passes its pattern). */
function isStorableKey(key: BoxKey): boolean {
  return isValidBoxName(key.name) && isValidBoxVersion(key.version) && isValidToken(key.architecture) && isValidToken(key.provider)
}

/** The host's architecture in Vagrant's words (amd64, arm64 ...). */
export function hostArchitecture(arch: string = process.arch): string {
  const names: Record<string, string> = {x64: 'amd64', arm64: 'arm64', ia32: 'i386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x'}
  return names[arch] ?? arch
}

export function boxesRoot(env: NodeJS.ProcessEnv = process.env): string {
  return vmPaths(env).boxes
}

export function boxDir(key: BoxKey, root = boxesRoot()): string {
  return path.join(root, escapeBoxName(key.name), key.version, key.architecture, key.provider)
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, {withFileTypes: true})
    return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name)
  } catch {
    return []
  }
}

async function directorySize(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size
  }
  return total
}

/** Reads one stored box; undefined when the directory holds no readable box. */
export async function readStoredBox(key: BoxKey, root = boxesRoot()): Promise<StoredBox | undefined> {
  if (!isStorableKey(key)) return undefined
  const dir = boxDir(key, root)
  let metadata: BoxMetadata
  try {
    metadata = parseBoxMetadata(await readFile(path.join(dir, METADATA_FILE), 'utf8'), `${key.name} ${key.version}`)
  } catch {
    return undefined
  }
  const source = await readFile(path.join(dir, SOURCE_FILE), 'utf8')
    .then((text) => JSON.parse(text) as BoxSource)
    .catch(() => undefined)
  const at = (file: string | undefined) => (file === undefined ? undefined : path.join(dir, file))
  return {
    ...key,
    dir,
    disks: metadata.disks.map((disk) => ({path: path.join(dir, disk.path), format: disk.format, name: disk.name})),
    kernel: at(metadata.kernel),
    initrd: at(metadata.initrd),
    cmdline: metadata.cmdline,
    firmware: metadata.firmware,
    sshUser: metadata.sshUser,
    metadata,
    source,
    size: await directorySize(dir),
  }
}

/** Every box in the store, sorted by name, then version (newest first). */
export async function listBoxes(root = boxesRoot()): Promise<StoredBox[]> {
  const boxes: StoredBox[] = []
  for (const escaped of await subdirs(root)) {
    const name = unescapeBoxName(escaped)
    if (name === undefined) continue
    for (const version of await subdirs(path.join(root, escaped))) {
      for (const architecture of await subdirs(path.join(root, escaped, version))) {
        for (const provider of await subdirs(path.join(root, escaped, version, architecture))) {
          const box = await readStoredBox({name, version, architecture, provider}, root)
          if (box !== undefined) boxes.push(box)
        }
      }
    }
  }
  return boxes.sort((a, b) => a.name.localeCompare(b.name) || compareVersions(b.version, a.version) || a.provider.localeCompare(b.provider))
}

/** Provider preference when a version offers several. */
export const PROVIDER_PREFERENCE = ['qemu', 'libvirt']

export function providerRank(provider: string): number {
  const rank = PROVIDER_PREFERENCE.indexOf(provider)
  return rank === -1 ? PROVIDER_PREFERENCE.length : rank
}

export interface FindBoxOptions {
  provider?: string | undefined
  root?: string | undefined
}

/**
 * The stored box that machines should use: the newest version of `name` meeting `constraint`
 * for `architecture` (the host's by default), qemu preferred over libvirt. Undefined when
 * none is stored; the caller can then addBox().
 */
export async function findBox(
  name: string,
  constraint?: string,
  architecture = hostArchitecture(),
  options: FindBoxOptions = {},
): Promise<StoredBox | undefined> {
  const candidates = (await listBoxes(options.root ?? boxesRoot())).filter(
    (box) =>
      box.name === name && box.architecture === architecture && (options.provider === undefined || box.provider === options.provider),
  )
  const version = newestSatisfying(
    candidates.map((box) => box.version),
    constraint,
  )
  if (version === undefined) return undefined
  return candidates.filter((box) => box.version === version).sort((a, b) => providerRank(a.provider) - providerRank(b.provider))[0]
}

/**
 * Moves an unpacked, verified box from `tempDir` (inside the store root) into place. With
 * `replace`, an existing box of the same key is swapped out; otherwise its presence is an error
 * for the caller to have checked.
 */
export async function installBox(tempDir: string, key: BoxKey, replace: boolean, root = boxesRoot()): Promise<string> {
  const target = boxDir(key, root)
  await mkdir(path.dirname(target), {recursive: true})
  let old: string | undefined
  if (replace && existsSync(target)) {
    old = `${tempDir}.old`
    await rename(target, old)
  }
  await rename(tempDir, target)
  if (old !== undefined) await rm(old, {recursive: true, force: true})
  return target
}

/** Removes one stored box and the directories it leaves empty. */
export async function removeStoredBox(key: BoxKey, root = boxesRoot()): Promise<void> {
  const dir = boxDir(key, root)
  await rm(dir, {recursive: true, force: true})
  let parent = path.dirname(dir)
  while (parent.startsWith(root) && parent !== root) {
    try {
      await rmdir(parent)
    } catch {
      break
    }
    parent = path.dirname(parent)
  }
}
