import type {DiskFacts} from '../verify.js'

/**
 * What `qemu-img info` would say about a qcow2 disk, read from its header in-process, for a
 * pulled disk whose bytes vm has just verified and written (no second process, no re-read).
 * Only the plain case is answered: qcow2 version 2 or 3, no backing file, no external data
 * file, no encryption, only feature bits qemu-img reads without asking anything (zstd
 * compression, extended L2 entries), and tables that lie inside the file. Anything else gives
 * undefined, and the caller asks qemu-img, which stays the judge of unusual images.
 */
export const QCOW2_HEADER_BYTES = 112

const MAGIC = 0x514649fb
/** Incompatible feature bits vm knows to be harmless: 3 compression type, 4 extended L2. */
const KNOWN_INCOMPATIBLE = (1n << 3n) | (1n << 4n)

export function qcow2Facts(head: Buffer, fileSize: number): DiskFacts | undefined {
  if (head.length < 72 || head.readUInt32BE(0) !== MAGIC) return undefined
  const version = head.readUInt32BE(4)
  if (version !== 2 && version !== 3) return undefined
  if (head.readBigUInt64BE(8) !== 0n || head.readUInt32BE(16) !== 0) return undefined // backing file
  const clusterBits = head.readUInt32BE(20)
  if (clusterBits < 9 || clusterBits > 21) return undefined
  const virtualSize = head.readBigUInt64BE(24)
  if (virtualSize > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
  if (head.readUInt32BE(32) !== 0) return undefined // encrypted
  const cluster = 1n << BigInt(clusterBits)
  const size = BigInt(fileSize)
  const inside = (offset: bigint, length: bigint) => length === 0n || (offset > 0n && offset % cluster === 0n && offset + length <= size)
  if (!inside(head.readBigUInt64BE(40), BigInt(head.readUInt32BE(36)) * 8n)) return undefined // L1 table
  if (!inside(head.readBigUInt64BE(48), BigInt(head.readUInt32BE(56)) * cluster)) return undefined // refcount table
  if (version === 3) {
    if (head.length < 104) return undefined
    if ((head.readBigUInt64BE(72) & ~KNOWN_INCOMPATIBLE) !== 0n) return undefined // data file, dirty, corrupt, unknown
    if (head.readBigUInt64BE(88) !== 0n) return undefined // autoclear bits (raw external data ...)
    if (head.readUInt32BE(100) < 104) return undefined
  }
  return {format: 'qcow2', virtualSize: Number(virtualSize), externalFile: undefined}
}
