import {UserError} from '../errors/errors.js'
import {writeFileAtomic} from '../state/atomic-file.js'

/**
 * A writer of small, flat, read-only ISO 9660 images with a Joliet directory: what the NoCloud
 * seed needs (a volume label and a handful of files in the root directory).
 *
 * Why ISO 9660 + Joliet (and neither FAT nor Rock Ridge):
 * - ISO 9660 is what cloud-init's own tooling (cloud-localds) and every cloud writes for a
 *   NoCloud seed; a read-only CD image matches the read-only drive it is attached as, and it has
 *   no allocation tables, so a writer is a straight layout of sectors.
 * - Plain ISO 9660 level 1 names are 8.3 upper-case d-characters: `meta-data` cannot be spelled.
 *   Joliet (a supplementary volume descriptor whose directory holds UCS-2 names) can spell any
 *   name NoCloud uses, exactly, and Linux (isofs), the BSDs and Windows read it: Linux prefers
 *   Rock Ridge, then Joliet, then the plain names. Rock Ridge would add POSIX modes and owners
 *   through System Use entries in every record, which a seed does not need.
 * - The primary directory still carries valid level 1 names (`META_DAT.;1`), so a reader that
 *   ignores Joliet sees a well-formed volume; the two directories share the file extents.
 *
 * Layout (2048-byte logical sectors, ECMA-119 numbering):
 *   0-15  system area (zeros)
 *   16    primary volume descriptor        17  Joliet supplementary volume descriptor
 *   18    volume descriptor set terminator
 *   19-22 path tables: primary L, primary M, Joliet L, Joliet M (the root only: 10 bytes each)
 *   23-   primary root directory, then the Joliet root directory, then each file's extent.
 *
 * Deliberate deviations, each the same as genisoimage's (and so as every NoCloud seed in use):
 * - The volume identifier is written as given, lower case included: ECMA-119 allows only upper
 *   case there, but blkid matches `LABEL=` case-sensitively and cloud-init's NoCloud looks for
 *   `cidata` (22.4 tries `CIDATA` and `cidata`; older releases only the configured spelling),
 *   so the label `cidata` must read back as written; blkid takes it from the Joliet descriptor
 *   when there is one, and from the primary one otherwise.
 * - Joliet file identifiers carry no `;1` version suffix (Linux strips one when present).
 */

export interface ImageFile {
  name: string
  content: string | Uint8Array
}

export interface ImageOptions {
  /** Volume label: 1-16 characters of A-Z a-z 0-9 _ - (16: the Joliet limit). */
  label: string
  /** Recorded as the volume's and the files' dates (default: now). blkid's UUID comes from it. */
  date?: Date
}

const SECTOR = 2048
const FIRST_DIRECTORY_SECTOR = 23
/** Joliet names are at most 64 UCS-2 characters (a directory record's identifier ≤ 128 bytes). */
const MAX_JOLIET_NAME = 64
/** ISO 9660 data lengths are 32-bit. */
const MAX_FILE_SIZE = 0xff_ff_ff_ff
/** Characters Joliet forbids in an identifier (besides control characters). */
const JOLIET_FORBIDDEN = /[*/:;?\\]/
const LABEL = /^[\w-]{1,16}$/

/** Checks the names and label; the first problem found is an error naming it. */
function validate(files: readonly ImageFile[], label: string): void {
  if (!LABEL.test(label)) {
    throw new UserError(`Invalid volume label "${label}": use 1 to 16 characters among A-Z, a-z, 0-9, "_" and "-".`)
  }
  const seen = new Set<string>()
  for (const file of files) {
    const {name} = file
    const problem =
      name.length === 0
        ? 'it is empty'
        : name.length > MAX_JOLIET_NAME
          ? `it is longer than ${MAX_JOLIET_NAME} characters`
          : name === '.' || name === '..'
            ? 'it names a directory'
            : JOLIET_FORBIDDEN.test(name)
              ? 'it contains one of * / : ; ? \\ (the image has one flat directory)'
              : // eslint-disable-next-line no-control-regex
                /[\u0000-\u001f\u007f]/.test(name)
                ? 'it contains a control character'
                : /[\ud800-\udfff]/.test(name)
                  ? 'it has a character outside the Basic Multilingual Plane (Joliet names are UCS-2)'
                  : name.endsWith('.') || name.endsWith(' ')
                    ? 'it ends with "." or a space, which readers drop'
                    : seen.has(name)
                      ? 'another file has the same name'
                      : undefined
    if (problem !== undefined) throw new UserError(`Cannot put file "${name}" in the ${label} image: ${problem}.`)
    seen.add(name)
  }
}

/** Both-endian (little then big) 16-bit and 32-bit fields, ECMA-119 7.2.3 and 7.3.3. */
function both16(buffer: Buffer, offset: number, value: number): void {
  buffer.writeUInt16LE(value, offset)
  buffer.writeUInt16BE(value, offset + 2)
}

function both32(buffer: Buffer, offset: number, value: number): void {
  buffer.writeUInt32LE(value, offset)
  buffer.writeUInt32BE(value, offset + 4)
}

/** A 7-byte directory record date (ECMA-119 9.1.5), in UTC. */
function recordDate(date: Date): Buffer {
  return Buffer.from([
    date.getUTCFullYear() - 1900,
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    0,
  ])
}

/** A 17-byte volume descriptor date (ECMA-119 8.4.26.1): digits, hundredths, UTC offset. */
function volumeDate(date: Date | undefined): Buffer {
  const out = Buffer.alloc(17)
  if (date === undefined) {
    out.write('0'.repeat(16), 0, 'ascii')
    return out
  }
  const pad = (value: number, width: number): string => String(value).padStart(width, '0')
  const text =
    pad(date.getUTCFullYear(), 4) +
    pad(date.getUTCMonth() + 1, 2) +
    pad(date.getUTCDate(), 2) +
    pad(date.getUTCHours(), 2) +
    pad(date.getUTCMinutes(), 2) +
    pad(date.getUTCSeconds(), 2) +
    pad(Math.floor(date.getUTCMilliseconds() / 10), 2)
  out.write(text, 0, 'ascii')
  return out
}

function ucs2be(text: string): Buffer {
  const out = Buffer.alloc(text.length * 2)
  for (let index = 0; index < text.length; index++) out.writeUInt16BE(text.charCodeAt(index), index * 2)
  return out
}

/** A text field padded with spaces: ASCII in the primary descriptor, UCS-2 in Joliet's. */
function textField(text: string, bytes: number, joliet: boolean): Buffer {
  const out = Buffer.alloc(bytes, 0x20)
  if (joliet) {
    for (let index = 0; index + 1 < bytes; index += 2) out.writeUInt16BE(0x20, index)
    // An odd-sized field's last byte stays 0x00 after the UCS-2 spaces (as genisoimage writes it).
    if (bytes % 2 === 1) out[bytes - 1] = 0
    ucs2be(text).copy(out)
  } else {
    out.write(text, 0, 'ascii')
  }
  return out
}

/** One directory record (ECMA-119 9.1); `identifier` is the raw file identifier bytes. */
function directoryRecord(identifier: Buffer, extent: number, size: number, date: Date, directory: boolean): Buffer {
  const length = 33 + identifier.length + (identifier.length % 2 === 0 ? 1 : 0)
  const record = Buffer.alloc(length)
  record[0] = length
  record[1] = 0 // extended attribute record length
  both32(record, 2, extent)
  both32(record, 10, size)
  recordDate(date).copy(record, 18)
  record[25] = directory ? 0x02 : 0x00
  record[26] = 0 // file unit size (not interleaved)
  record[27] = 0 // interleave gap
  both16(record, 28, 1) // volume sequence number
  record[32] = identifier.length
  identifier.copy(record, 33)
  return record
}

/** Records packed into sectors: a record never crosses a sector boundary (ECMA-119 6.8.1.1). */
function packDirectory(records: readonly Buffer[]): Buffer {
  const sectors: Buffer[] = []
  let current = Buffer.alloc(SECTOR)
  let used = 0
  for (const record of records) {
    if (used + record.length > SECTOR) {
      sectors.push(current)
      current = Buffer.alloc(SECTOR)
      used = 0
    }
    record.copy(current, used)
    used += record.length
  }
  sectors.push(current)
  return Buffer.concat(sectors)
}

/** A path table holding the root directory only (ECMA-119 9.4). */
function pathTable(rootExtent: number, bigEndian: boolean): Buffer {
  const table = Buffer.alloc(10)
  table[0] = 1 // length of the directory identifier
  table[1] = 0
  if (bigEndian) {
    table.writeUInt32BE(rootExtent, 2)
    table.writeUInt16BE(1, 6)
  } else {
    table.writeUInt32LE(rootExtent, 2)
    table.writeUInt16LE(1, 6)
  }
  table[8] = 0 // the root's identifier, then a pad byte
  return table
}

/**
 * Level 1 names for the primary directory: upper case d-characters, 8.3, unique. `meta-data`
 * becomes `META_DAT.;1`; a clash is resolved by ending the name part with `_1`, `_2`, ...
 */
function level1Names(names: readonly string[]): string[] {
  const taken = new Set<string>()
  return names.map((name) => {
    const dot = name.lastIndexOf('.')
    const clean = (part: string): string => part.toUpperCase().replaceAll(/[^A-Z0-9_]/g, '_')
    const base = clean(dot > 0 ? name.slice(0, dot) : name).slice(0, 8) || '_'
    const extension = clean(dot > 0 ? name.slice(dot + 1) : '').slice(0, 3)
    let candidate = `${base}.${extension}`
    for (let counter = 1; taken.has(candidate); counter++) {
      const suffix = `_${counter}`
      candidate = `${base.slice(0, 8 - suffix.length)}${suffix}.${extension}`
    }
    taken.add(candidate)
    return `${candidate};1`
  })
}

/** ECMA-119 9.3 order: by name part, then extension, each compared as if padded with spaces. */
function comparePrimary(left: string, right: string): number {
  const split = (identifier: string): [string, string] => {
    const [name, rest] = identifier.split('.') as [string, string]
    return [name, rest.split(';')[0]!]
  }
  const [leftName, leftExtension] = split(left)
  const [rightName, rightExtension] = split(right)
  return comparePadded(leftName, rightName) || comparePadded(leftExtension, rightExtension)
}

function comparePadded(left: string, right: string): number {
  const width = Math.max(left.length, right.length)
  const a = left.padEnd(width, ' ')
  const b = right.padEnd(width, ' ')
  return a < b ? -1 : a > b ? 1 : 0
}

interface Placed {
  joliet: string
  primary: string
  data: Buffer
  extent: number
}

/** The bytes of an ISO 9660 + Joliet image holding `files` in its root directory. */
export function buildIsoImage(files: readonly ImageFile[], options: ImageOptions): Buffer {
  const {label} = options
  validate(files, label)
  const date = options.date ?? new Date()
  const datas = files.map((file) => (typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : Buffer.from(file.content)))
  for (const [index, data] of datas.entries()) {
    if (data.length > MAX_FILE_SIZE)
      throw new UserError(`File "${files[index]!.name}" is too large for the ${label} image (4 GiB at most).`)
  }
  const primaryNames = level1Names(files.map((file) => file.name))
  const placed: Placed[] = files.map((file, index) => ({joliet: file.name, primary: primaryNames[index]!, data: datas[index]!, extent: 0}))

  const dot = Buffer.from([0])
  const dotdot = Buffer.from([1])
  const recordsFor = (joliet: boolean): Buffer[] =>
    [...placed]
      .sort((a, b) => (joliet ? Buffer.compare(ucs2be(a.joliet), ucs2be(b.joliet)) : comparePrimary(a.primary, b.primary)))
      .map((file) =>
        directoryRecord(joliet ? ucs2be(file.joliet) : Buffer.from(file.primary, 'ascii'), file.extent, file.data.length, date, false),
      )

  // Directory sizes depend only on the names, so they are measured first (with placeholder
  // extents), then the file extents are assigned after them, then the directories are built.
  const stub = (directoryExtent: number, joliet: boolean): Buffer[] => [
    directoryRecord(dot, directoryExtent, 0, date, true),
    directoryRecord(dotdot, directoryExtent, 0, date, true),
    ...recordsFor(joliet),
  ]
  const primarySectors = packDirectory(stub(0, false)).length / SECTOR
  const jolietSectors = packDirectory(stub(0, true)).length / SECTOR
  const primaryRoot = FIRST_DIRECTORY_SECTOR
  const jolietRoot = primaryRoot + primarySectors
  let next = jolietRoot + jolietSectors
  for (const file of placed) {
    // An empty file has no extent of its own; it points at where data would start, length 0.
    file.extent = next
    next += Math.ceil(file.data.length / SECTOR)
  }
  // A trailing empty file would point just past the data: one zero sector keeps every extent
  // inside the volume.
  const totalSectors = placed.some((file) => file.extent === next) ? next + 1 : next

  const directory = (extent: number, sectors: number, joliet: boolean): Buffer =>
    packDirectory([
      directoryRecord(dot, extent, sectors * SECTOR, date, true),
      directoryRecord(dotdot, extent, sectors * SECTOR, date, true),
      ...recordsFor(joliet),
    ])

  const image = Buffer.alloc(totalSectors * SECTOR)
  image.set(volumeDescriptor(false), 16 * SECTOR)
  image.set(volumeDescriptor(true), 17 * SECTOR)
  // Volume descriptor set terminator (ECMA-119 8.3).
  image.set(Buffer.from([255, ...Buffer.from('CD001', 'ascii'), 1]), 18 * SECTOR)
  image.set(pathTable(primaryRoot, false), 19 * SECTOR)
  image.set(pathTable(primaryRoot, true), 20 * SECTOR)
  image.set(pathTable(jolietRoot, false), 21 * SECTOR)
  image.set(pathTable(jolietRoot, true), 22 * SECTOR)
  image.set(directory(primaryRoot, primarySectors, false), primaryRoot * SECTOR)
  image.set(directory(jolietRoot, jolietSectors, true), jolietRoot * SECTOR)
  for (const file of placed) image.set(file.data, file.extent * SECTOR)
  return image

  /** The primary (ECMA-119 8.4) or the Joliet supplementary (8.5) volume descriptor. */
  function volumeDescriptor(joliet: boolean): Buffer {
    const root = joliet ? jolietRoot : primaryRoot
    const rootSectors = joliet ? jolietSectors : primarySectors
    const descriptor = Buffer.alloc(SECTOR)
    descriptor[0] = joliet ? 2 : 1
    descriptor.write('CD001', 1, 'ascii')
    descriptor[6] = 1 // version
    descriptor[7] = 0 // volume flags: escape sequences are ISO 2375 registered
    textField('', 32, joliet).copy(descriptor, 8) // system identifier
    textField(label, 32, joliet).copy(descriptor, 40) // volume identifier
    both32(descriptor, 80, totalSectors)
    // Joliet: UCS-2 level 3, escape sequence "%/E".
    if (joliet) descriptor.write('%/E', 88, 'ascii')
    both16(descriptor, 120, 1) // volume set size
    both16(descriptor, 124, 1) // volume sequence number
    both16(descriptor, 128, SECTOR) // logical block size
    both32(descriptor, 132, 10) // path table size
    descriptor.writeUInt32LE(joliet ? 21 : 19, 140) // type L path table
    descriptor.writeUInt32LE(0, 144) // optional type L path table: none
    descriptor.writeUInt32BE(joliet ? 22 : 20, 148) // type M path table
    descriptor.writeUInt32BE(0, 152) // optional type M path table: none
    directoryRecord(Buffer.from([0]), root, rootSectors * SECTOR, date, true).copy(descriptor, 156)
    textField('', 128, joliet).copy(descriptor, 190) // volume set identifier
    textField('', 128, joliet).copy(descriptor, 318) // publisher identifier
    textField('', 128, joliet).copy(descriptor, 446) // data preparer identifier
    textField('', 128, joliet).copy(descriptor, 574) // application identifier
    textField('', 37, joliet).copy(descriptor, 702) // copyright file identifier
    textField('', 37, joliet).copy(descriptor, 739) // abstract file identifier
    textField('', 37, joliet).copy(descriptor, 776) // bibliographic file identifier
    volumeDate(date).copy(descriptor, 813) // creation
    volumeDate(date).copy(descriptor, 830) // modification
    volumeDate(undefined).copy(descriptor, 847) // expiration: not specified
    volumeDate(undefined).copy(descriptor, 864) // effective: not specified
    descriptor[881] = 1 // file structure version
    return descriptor
  }
}

/**
 * Writes the seed image `file` (mode 0600, atomically: a reader sees the old image or the new
 * one, never half) holding `files` in its root directory, labelled `label`.
 */
export async function writeSeedImage(file: string, files: readonly ImageFile[], label = 'cidata', date?: Date): Promise<void> {
  await writeFileAtomic(file, buildIsoImage(files, {label, date}), {mode: 0o600})
}
