import {randomBytes} from 'node:crypto'
import {gzipSync} from 'node:zlib'

import {describe, expect, it} from 'vitest'

import {ChunkInflater} from '../../src/box/oci/inflate.js'

/**
 * The pull's inflater: a chunk inflates into the worker's reused buffer to exactly the size its
 * recipe gives; a damaged, short or long stream is refused, and the inflater goes on working.
 */
function sample(size: number): Buffer {
  const data = Buffer.alloc(size)
  const noise = randomBytes(size >> 3)
  noise.copy(data, size >> 1)
  for (let index = 0; index < size >> 1; index += 13) data[index] = index & 0xff
  return data
}

describe('ChunkInflater', () => {
  it('inflates chunk after chunk into one reused buffer', async () => {
    const inflater = new ChunkInflater()
    try {
      const first = sample(1 << 20)
      const second = sample(300_000)
      const out1 = await inflater.inflate(gzipSync(first), first.length)
      expect(out1.equals(first)).toBe(true)
      const out2 = await inflater.inflate(gzipSync(second), second.length)
      expect(out2.equals(second)).toBe(true)
      // The same memory, reused: the first view is valid only until the next call.
      expect(out2.buffer).toBe(out1.buffer)
    } finally {
      inflater.close()
    }
  })

  it('refuses a stream that inflates to fewer or more bytes than declared', async () => {
    const inflater = new ChunkInflater()
    const data = sample(200_000)
    const gz = gzipSync(data)
    await expect(inflater.inflate(gz, data.length + 1)).rejects.toThrow(/200000 bytes, not 200001/)
    await expect(inflater.inflate(gz, data.length - 1)).rejects.toThrow(/more than 199999 bytes/)
    expect((await inflater.inflate(gz, data.length)).equals(data)).toBe(true)
    inflater.close()
  })

  it('refuses a truncated or damaged stream and works again after', async () => {
    const inflater = new ChunkInflater()
    const data = sample(100_000)
    const gz = gzipSync(data)
    await expect(inflater.inflate(gz.subarray(0, gz.length - 20), data.length)).rejects.toThrow(/unexpected end of file/)
    const damaged = Buffer.from(gz)
    damaged.writeUInt8(damaged.readUInt8(damaged.length >> 1) ^ 0xff, damaged.length >> 1)
    await expect(inflater.inflate(damaged, data.length)).rejects.toThrow()
    await expect(inflater.inflate(Buffer.from('not gzip at all'), 10)).rejects.toThrow(/header/)
    expect((await inflater.inflate(gz, data.length)).equals(data)).toBe(true)
    inflater.close()
  })

  it('inflates an empty chunk', async () => {
    const inflater = new ChunkInflater()
    expect((await inflater.inflate(gzipSync(Buffer.alloc(0)), 0)).length).toBe(0)
    inflater.close()
  })
})
