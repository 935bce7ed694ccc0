import {open} from 'node:fs/promises'

/**
 * Content-defined chunking of box files (FastCDC's gear hash, without normalisation). A cut
 * falls where the top 20 bits of a rolling hash of the last 32 bytes are zero, so boundaries
 * depend on content, not on offsets: a change inside a disk, or bytes inserted or removed
 * before a region (a repackaged qcow2 whose compressed clusters changed size shifts all that
 * follows), changes only the chunks around it; the rest keep their digests and are neither
 * uploaded nor downloaded again. Fixed-size blocks would lose every block after a shift.
 *
 * Chunks are 256 KiB to 4 MiB, about 1.25 MiB on average: small enough that a change costs
 * little, large enough that a 2 GiB disk is ~1600 blobs. The gear table comes from a fixed
 * seed: it is part of the format (changing it changes every digest).
 */
export const MIN_CHUNK = 256 * 1024
export const MAX_CHUNK = 4 * 1024 * 1024
const MASK = 0xfffff000

const GEAR = (() => {
  const table = new Uint32Array(256)
  // xorshift32 from a fixed seed.
  let state = 0x9e3779b9
  for (let index = 0; index < 256; index++) {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    table[index] = state
  }
  return table
})()

/** Length of the next chunk of `data[start, end)`; `final` when no more bytes follow `end`. */
export function cutPoint(data: Uint8Array, start: number, end: number, final: boolean): number {
  const available = end - start
  if (available <= MIN_CHUNK) return final ? available : -1
  const limit = Math.min(available, MAX_CHUNK)
  let hash = 0
  for (let index = start + MIN_CHUNK; index < start + limit; index++) {
    hash = ((hash << 1) + GEAR[data[index]!]!) >>> 0
    if ((hash & MASK) === 0) return index + 1 - start
  }
  if (limit === MAX_CHUNK || final) return limit
  return -1
}

/** The chunks of a file, in order: offset and a copy of the bytes. */
export async function* chunkFile(file: string): AsyncIterable<{offset: number; data: Buffer}> {
  const handle = await open(file, 'r')
  const buffer = Buffer.allocUnsafe(4 * MAX_CHUNK)
  let start = 0
  let end = 0
  let final = false
  let offset = 0
  try {
    for (;;) {
      let length = cutPoint(buffer, start, end, final)
      if (length === -1 || (end - start < MAX_CHUNK && !final)) {
        buffer.copy(buffer, 0, start, end)
        end -= start
        start = 0
        while (end < buffer.length && !final) {
          const {bytesRead} = await handle.read(buffer, end, buffer.length - end, null)
          if (bytesRead === 0) final = true
          end += bytesRead
        }
        length = cutPoint(buffer, start, end, final)
      }
      if (length <= 0) return
      yield {offset, data: Buffer.from(buffer.subarray(start, start + length))}
      start += length
      offset += length
    }
  } finally {
    await handle.close()
  }
}
