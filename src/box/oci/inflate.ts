import {promisify} from 'node:util'
import zlib from 'node:zlib'

/**
 * Inflates gzip chunks of a pull into one output buffer per worker, reused from chunk to chunk.
 * zlib's public calls allocate a fresh output buffer for every chunk (or 16 KiB pieces joined at
 * the end): on a machine where touching new memory is dear, filling a fresh 4 MiB buffer costs
 * about as much as the inflating itself. Node's zlib handle can inflate into a buffer the caller
 * gives (the call its own synchronous methods make), so each worker keeps one handle and one
 * buffer; when that handle is not there (another runtime), the public call is used instead.
 *
 * A chunk must inflate to exactly the size its recipe declares: the output buffer holds one byte
 * more, so a longer stream shows as a full buffer and is refused like a shorter one.
 */

/** The handle's synchronous call and the two counts it leaves: output space left, input left. */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void
  reset(): void
  /** Called (synchronously, inside writeSync) with zlib's message when the stream is damaged. */
  onerror: (message: string, errno: number, code?: string) => void
}

interface HandleParts {
  _handle?: ZlibHandle | null
  _writeState?: Uint32Array
}

const gunzipAsync = promisify(zlib.gunzip)

export class ChunkInflater {
  private stream: zlib.Gunzip | undefined
  private handle: ZlibHandle | undefined
  private state: Uint32Array | undefined
  private failure: Error | undefined
  private output = Buffer.alloc(0)

  /**
   * The bytes `input` inflates to, exactly `size` of them, as a view of this inflater's buffer
   * (valid until its next call); rejects when the stream is damaged, shorter or longer.
   */
  async inflate(input: Buffer, size: number): Promise<Buffer> {
    if (this.output.length < size + 1) this.output = Buffer.allocUnsafe(size + 1)
    const out = this.output.subarray(0, size + 1)
    if (!this.open()) {
      const data = await gunzipAsync(input, {chunkSize: Math.max(64, size + 1), maxOutputLength: size + 1})
      if (data.length !== size) throw new Error(`it inflates to ${data.length} bytes, not ${size}`)
      return data
    }
    this.failure = undefined
    try {
      this.handle!.writeSync(zlib.constants.Z_FINISH, input, 0, input.length, out, 0, out.length)
    } catch (error) {
      this.failure ??= error as Error
    }
    const failure = this.failure
    const produced = out.length - this.state![0]!
    if (failure !== undefined) {
      // An error closes the handle: the next chunk gets a new one.
      this.close()
      throw failure
    }
    this.handle!.reset()
    if (produced !== size)
      throw new Error(produced > size ? `it inflates to more than ${size} bytes` : `it inflates to ${produced} bytes, not ${size}`)
    return out.subarray(0, size)
  }

  close(): void {
    const stream = this.stream
    this.stream = undefined
    this.handle = undefined
    this.state = undefined
    stream?.destroy()
  }

  /** A handle ready for the next chunk, when this runtime has one. */
  private open(): boolean {
    if (this.handle !== undefined) return true
    const stream = zlib.createGunzip()
    const parts = stream as unknown as HandleParts
    const handle = parts._handle
    if (typeof handle?.writeSync !== 'function' || typeof handle.reset !== 'function' || !(parts._writeState instanceof Uint32Array)) {
      stream.destroy()
      return false
    }
    // A damaged stream: zlib's reason, kept for inflate to throw (the stream's own handler
    // would destroy it on a later tick instead).
    handle.onerror = (message: string) => {
      this.failure ??= new Error(message)
    }
    stream.on('error', () => undefined)
    this.stream = stream
    this.handle = handle
    this.state = parts._writeState
    return true
  }
}
