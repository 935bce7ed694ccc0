/**
 * zstd frames that hold bytes as they are (raw blocks, RFC 8878 section 3.1.1.2): no CPU spent
 * compressing what is compressed already (a qcow2 of compressed clusters). A .tar.zst may be
 * any sequence of frames; zstd, libarchive (bsdtar, Vagrant) and GNU tar decode it as one stream.
 */

const MAGIC = 0xfd2fb528
/** Largest block the format allows, and the window the frame declares (2^17 bytes). */
export const RAW_BLOCK_MAX = 128 * 1024
/** Window_Descriptor of a 2^17-byte window: exponent 17 - 10 = 7, mantissa 0. */
const WINDOW_DESCRIPTOR = 7 << 3
const RAW = 0

function blockHeader(size: number, last: boolean): Buffer {
  const header = Buffer.alloc(3)
  header.writeUIntLE((size << 3) | (RAW << 1) | (last ? 1 : 0), 0, 3)
  return header
}

/**
 * Frame header: magic number; Frame_Header_Descriptor 0 (no content size: the frame streams;
 * no single segment; no checksum; no dictionary); Window_Descriptor (128 KiB, so decoders
 * need no more memory than one block, however large the content).
 */
function frameHeader(): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt32LE(MAGIC, 0)
  header.writeUInt8(0, 4)
  header.writeUInt8(WINDOW_DESCRIPTOR, 5)
  return header
}

/**
 * The bytes of `source` as one zstd frame of raw blocks, ended by an empty last block. Each
 * chunk of the source comes out as one buffer, its blocks' headers in place (one copy of the
 * data, in memory): a large file goes on to the hash and the output in a few large writes
 * rather than two small ones per 128 KiB block.
 */
export async function* rawZstdFrame(source: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncIterable<Buffer> {
  yield frameHeader()
  for await (const chunk of source) yield* rawBlocks(chunk)
  yield blockHeader(0, true)
}

/** Raw blocks read into each of the two buffers of rawZstdFileFrame (1 MiB of data per read). */
const BLOCKS_PER_READ = 8

/**
 * One zstd frame of raw blocks holding `head`, then `size` bytes of the file `source`, then
 * `tail` (a stored tar entry: its header, its data, its padding). The file is read straight into
 * its blocks (one readv per 1 MiB, the block headers in place) in two buffers used in turn: the
 * next one is read while the caller handles the last. A chunk is therefore valid only until
 * the next one is asked for: the caller writes (and hashes) each before it asks. Reusing the
 * buffers matters more than it seems: fresh memory costs a page fault per 4 KiB on first use,
 * which for a disk of tens of MiB took longer than reading, hashing and writing it.
 * `changed(read)` makes the error thrown when the file holds fewer bytes than `size`.
 */
export async function* rawZstdFileFrame(
  head: Buffer,
  source: string,
  size: number,
  tail: Buffer,
  changed: (read: number) => Error,
): AsyncIterable<Buffer> {
  yield frameHeader()
  yield* rawBlocks(head)
  if (size > 0) {
    const {open} = await import('node:fs/promises')
    const input = await open(source, 'r')
    let reading: Promise<{chunk: Buffer; next: number}> | undefined
    try {
      const buffers = [0, 1].map(() => Buffer.allocUnsafe(BLOCKS_PER_READ * (RAW_BLOCK_MAX + 3)))
      const readInto = async (buffer: Buffer, position: number): Promise<{chunk: Buffer; next: number}> => {
        const slices: Buffer[] = []
        let at = 0
        let next = position
        while (slices.length < BLOCKS_PER_READ && next < size) {
          const length = Math.min(RAW_BLOCK_MAX, size - next)
          blockHeader(length, false).copy(buffer, at)
          slices.push(buffer.subarray(at + 3, at + 3 + length))
          at += 3 + length
          next += length
        }
        const {bytesRead} = await input.readv(slices, position)
        if (bytesRead !== next - position) throw changed(position + bytesRead)
        return {chunk: buffer.subarray(0, at), next}
      }
      const start = (buffer: Buffer, position: number): Promise<{chunk: Buffer; next: number}> => {
        const read = readInto(buffer, position)
        // Its failure is met when it is awaited (a failure while the caller writes is not unhandled).
        read.catch(() => undefined)
        return read
      }
      let turn = 0
      reading = start(buffers[0]!, 0)
      while (reading !== undefined) {
        const {chunk, next}: {chunk: Buffer; next: number} = await reading
        turn ^= 1
        reading = next < size ? start(buffers[turn]!, next) : undefined
        yield chunk
      }
    } finally {
      // A read still under way when the caller stopped ends before the file is closed.
      await reading?.catch(() => undefined)
      await input.close()
    }
  }
  yield* rawBlocks(tail)
  yield blockHeader(0, true)
}

/** `bytes` as raw blocks, none of them the last, in one buffer (nothing for no bytes). */
function* rawBlocks(bytes: Buffer): Iterable<Buffer> {
  if (bytes.length === 0) return
  const blocks = Math.ceil(bytes.length / RAW_BLOCK_MAX)
  const out = Buffer.allocUnsafe(bytes.length + 3 * blocks)
  let at = 0
  for (let offset = 0; offset < bytes.length; offset += RAW_BLOCK_MAX) {
    const length = Math.min(RAW_BLOCK_MAX, bytes.length - offset)
    blockHeader(length, false).copy(out, at)
    bytes.copy(out, at + 3, offset, offset + length)
    at += 3 + length
  }
  yield out
}
