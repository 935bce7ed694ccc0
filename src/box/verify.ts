import {chmod, lstat, open, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {runProgram} from '../process/run.js'
import {identifyImage, IDENTIFY_BYTES, rawSizeProblem} from './disk-signature.js'
import {parseBoxMetadata, referencedFiles, type BoxMetadata, type DiskFormat} from './metadata.js'
import {METADATA_FILE} from './store.js'

/** What `qemu-img info --output=json` says about a disk, reduced to what box checks need. */
export interface DiskFacts {
  format: string
  virtualSize: number
  /** Any file outside the image it would read: a backing file or an external data file. */
  externalFile: string | undefined
}

/** Parses `qemu-img info --output=json FILE` output. */
export function parseDiskFacts(json: string): DiskFacts {
  const info = JSON.parse(json) as {
    format: string
    'virtual-size': number
    'backing-filename'?: string
    'full-backing-filename'?: string
    'format-specific'?: {data?: {'data-file'?: string}}
  }
  return {
    format: info.format,
    virtualSize: info['virtual-size'],
    externalFile: info['backing-filename'] ?? info['full-backing-filename'] ?? info['format-specific']?.data?.['data-file'],
  }
}

export async function inspectDisk(file: string): Promise<DiskFacts> {
  const {stdout} = await runProgram('qemu-img', ['info', '--output=json', file], {
    missingHint: 'Install qemu-utils (apt-get install qemu-utils).',
    timeoutMs: 60_000,
  })
  return parseDiskFacts(stdout)
}

function rejected(where: string, problem: string, hint?: string): UserError {
  return new UserError(`Refusing the box from ${where}: ${problem}`, {
    code: 'BOX_INVALID',
    hint: hint ?? 'The box is damaged or not made for the libvirt/qemu providers; ask its publisher for a fixed one.',
  })
}

/**
 * Checks one disk: a qcow2 or raw image of the declared format that references no host file.
 * `known`: the facts vm already read from the bytes it wrote (a pulled disk's header), else qemu-img is asked.
 */
export async function checkDisk(file: string, declared: DiskFormat | undefined, where: string, known?: DiskFacts): Promise<DiskFacts> {
  const facts =
    known ??
    (await inspectDisk(file).catch((error: unknown) => {
      throw rejected(where, `qemu-img cannot read ${path.basename(file)}: ${(error as Error).message}`)
    }))
  const name = path.basename(file)
  if (facts.externalFile !== undefined) {
    throw rejected(
      where,
      `${name} references the host file "${facts.externalFile}"`,
      'A box disk must be self-contained (no backing file): boxes may not reach into the host.',
    )
  }
  if (facts.format !== 'qcow2' && facts.format !== 'raw')
    throw rejected(where, `${name} is a ${facts.format} image; vm runs qcow2 and raw disks`)
  if (declared !== undefined && facts.format !== declared) {
    throw rejected(where, `${name} is not a ${declared} image (qemu-img sees ${facts.format})`)
  }
  // qemu-img calls anything it does not recognize raw: a raw disk must look like one.
  if (facts.format === 'raw') {
    const {head, size} = await readHead(file)
    const identity = identifyImage(head)
    const problem = identity.disk ? rawSizeProblem(size) : `it looks like ${identity.what}`
    if (problem !== undefined)
      throw rejected(
        where,
        `${name} is not a disk image: ${problem}`,
        'A raw disk needs a partition table or a filesystem; is this the right file?',
      )
  }
  return facts
}

async function readHead(file: string): Promise<{head: Buffer; size: number}> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(IDENTIFY_BYTES)
    const {bytesRead} = await handle.read(buffer, 0, IDENTIFY_BYTES, 0)
    return {head: buffer.subarray(0, bytesRead), size: (await handle.stat()).size}
  } finally {
    await handle.close()
  }
}

/**
 * Checks an unpacked box directory: a usable metadata.json, every file it names present as a
 * regular file, every disk sound (`known`: facts of disks by relative path, see checkDisk).
 * Returns the metadata.
 */
export async function verifyUnpackedBox(dir: string, where: string, known?: ReadonlyMap<string, DiskFacts>): Promise<BoxMetadata> {
  let text: string
  try {
    text = await readFile(path.join(dir, METADATA_FILE), 'utf8')
  } catch {
    throw rejected(
      where,
      'the archive has no metadata.json',
      'A Vagrant box holds metadata.json and box.img; is this a box for the libvirt or qemu provider?',
    )
  }
  const metadata = parseBoxMetadata(text, where)
  for (const file of referencedFiles(metadata)) {
    const stats = await lstat(path.join(dir, file)).catch(() => undefined)
    if (stats === undefined || !stats.isFile()) throw rejected(where, `metadata.json names ${file}, which is not in the archive`)
  }
  for (const disk of metadata.disks) await checkDisk(path.join(dir, disk.path), disk.format, where, known?.get(path.normalize(disk.path)))
  return metadata
}

/**
 * Turns a bare disk image into a one-disk box by writing its metadata.json. A bare image
 * declares no login convention (no user, no key): it is stored as a cloud image, booted with
 * a cloud-init seed that creates the login user with the machine's own key.
 */
export async function describeBareImage(dir: string, image: string, where: string, name: string, version: string): Promise<BoxMetadata> {
  const facts = await checkDisk(path.join(dir, image), undefined, where)
  const json = {
    provider: 'qemu',
    format: facts.format,
    virtual_size: Math.max(1, Math.ceil(facts.virtualSize / 1024 ** 3)),
    name,
    version,
    cloud_init: true,
  }
  const text = `${JSON.stringify(json, null, 2)}\n`
  await writeFile(path.join(dir, METADATA_FILE), text)
  return parseBoxMetadata(text, where)
}

/** Stored disks, kernel and initrd become read-only: they back machine overlays. */
export async function sealBox(dir: string, metadata: BoxMetadata): Promise<void> {
  await chmod(dir, 0o755)
  for (const file of referencedFiles(metadata)) await chmod(path.join(dir, file), 0o444)
}
