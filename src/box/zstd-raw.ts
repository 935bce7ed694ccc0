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
  for await (const chunk of source) {
    if (chunk.length === 0) continue
    const blocks = Math.ceil(chunk.length / RAW_BLOCK_MAX)
    const out = Buffer.allocUnsafe(chunk.length + 3 * blocks)
    let at = 0
    for (let offset = 0; offset < chunk.length; offset += RAW_BLOCK_MAX) {
      const size = Math.min(RAW_BLOCK_MAX, chunk.length - offset)
      blockHeader(size, false).copy(out, at)
      chunk.copy(out, at + 3, offset, offset + size)
      at += 3 + size
    }
    yield out
  }
  yield blockHeader(0, true)
}
