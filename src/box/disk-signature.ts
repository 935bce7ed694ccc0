/**
 * What a file is, from its first bytes: vm stores a bare image only when it is recognizably a
 * disk (qcow2, or raw with a partition table, boot sector or filesystem signature), and
 * otherwise says what the file looks like (an HTML page, a tar, text ...).
 */

/** Bytes needed to see every signature below (btrfs keeps its magic at 64 KiB + 64). */
export const IDENTIFY_BYTES = 0x10040 + 8

export interface Identity {
  disk: boolean
  /** "a qcow2 image", "an HTML page" ... */
  what: string
  format?: 'qcow2' | 'raw' | undefined
  /** Bytes, from a qcow2 header. */
  virtualSize?: number | undefined
}

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb])

function at(head: Buffer, offset: number, text: string | Buffer): boolean {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text
  return head.length >= offset + bytes.length && head.subarray(offset, offset + bytes.length).equals(bytes)
}

/** The virtual size a qcow2 header declares, or undefined when `head` is not qcow2. */
export function qcow2VirtualSize(head: Buffer): number | undefined {
  if (!at(head, 0, QCOW2_MAGIC) || head.length < 32) return undefined
  return Number(head.readBigUInt64BE(24))
}

const RAW_SIGNATURES: Array<[number, string | Buffer, string]> = [
  [512, 'EFI PART', 'a GPT partition table'],
  [0x438, Buffer.from([0x53, 0xef]), 'an ext2/3/4 filesystem'],
  [0, 'XFSB', 'an XFS filesystem'],
  [0x10040, '_BHRfS_M', 'a btrfs filesystem'],
  [0x8001, 'CD001', 'an ISO 9660 filesystem'],
  [512, 'LABELONE', 'an LVM physical volume'],
  [0, Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]), 'a LUKS volume'],
  [0, 'hsqs', 'a squashfs filesystem'],
  [0x400, Buffer.from([0x10, 0x20, 0xf5, 0xf2]), 'an F2FS filesystem'],
  [4086, 'SWAPSPACE2', 'a swap area'],
  [510, Buffer.from([0x55, 0xaa]), 'a partition table or boot sector'],
]

const NOT_DISKS: Array<[number, string | Buffer, string]> = [
  [0, Buffer.from([0x1f, 0x8b]), 'gzip-compressed data (compressed twice?)'],
  [0, Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'zstd-compressed data (compressed twice?)'],
  [0, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), 'xz-compressed data (compressed twice?)'],
  [0, 'BZh', 'bzip2-compressed data (compressed twice?)'],
  [0, 'PK\u0003\u0004', 'a ZIP archive'],
  [257, 'ustar', 'a tar archive'],
  [0, 'KDMV', 'a VMDK image (convert it with qemu-img convert -O qcow2)'],
  [0, 'conectix', 'a VHD image (convert it with qemu-img convert -O qcow2)'],
  [0, 'vhdxfile', 'a VHDX image (convert it with qemu-img convert -O qcow2)'],
  [0x40, Buffer.from([0x7f, 0x10, 0xda, 0xbe]), 'a VDI image (convert it with qemu-img convert -O qcow2)'],
  [0, '\u007fELF', 'an ELF executable'],
  [0, '%PDF', 'a PDF document'],
]

/** The start of a tar header cut short: a NUL-padded name, then an octal mode field. */
function looksLikeTarHeader(head: Buffer): boolean {
  if (head.length < 108 || head.length >= 262) return false
  const name = head.subarray(0, 100).toString('latin1')
  const mode = head.subarray(100, 108).toString('latin1')
  return /^[\x21-\x7e][\x20-\x7e]*\0*$/.test(name) && /^[0-7 ]{6,7}\0?$/.test(mode)
}

function describeText(head: Buffer): string | undefined {
  const sample = head
    .subarray(0, 4096)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
  if (/^\s*<(!doctype\s+html|html|head|body)\b/i.test(sample)) return 'an HTML page'
  if (/^\s*<\?xml\b/i.test(sample)) return 'an XML document'
  if (/^\s*[[{]/.test(sample)) return 'JSON text'
  if (sample.startsWith('#!')) return 'a script'
  // eslint-disable-next-line no-control-regex -- text is what has no control characters but whitespace
  if (!/[\u0000-\u0008\u000e-\u001f\u007f\ufffd]/.test(sample)) return 'text'
  return undefined
}

/** What `head` (the first IDENTIFY_BYTES of a file, or all of a shorter one) is. */
export function identifyImage(head: Buffer): Identity {
  if (head.length === 0) return {disk: false, what: 'empty'}
  const virtualSize = qcow2VirtualSize(head)
  if (virtualSize !== undefined) return {disk: true, what: 'a qcow2 image', format: 'qcow2', virtualSize}
  if (at(head, 0, QCOW2_MAGIC)) return {disk: false, what: 'a truncated qcow2 header'}
  for (const [offset, magic, what] of NOT_DISKS) if (at(head, offset, magic)) return {disk: false, what}
  if (looksLikeTarHeader(head)) return {disk: false, what: 'the start of a tar archive, cut short'}
  const text = describeText(head)
  if (text !== undefined) return {disk: false, what: text}
  for (const [offset, magic, what] of RAW_SIGNATURES)
    if (at(head, offset, magic)) return {disk: true, what: `a raw disk with ${what}`, format: 'raw'}
  if (head.every((byte) => byte === 0)) return {disk: false, what: 'zero bytes only (a blank disk with nothing to boot)'}
  return {disk: false, what: 'data of an unknown kind (no partition table or filesystem signature)'}
}

/** Why a raw image of `size` bytes cannot be a disk, or undefined when its size is plausible. */
export function rawSizeProblem(size: number): string | undefined {
  if (size % 512 !== 0) return `its size (${size} bytes) is not a multiple of 512`
  return undefined
}
