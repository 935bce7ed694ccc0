import net from 'node:net'

/**
 * GETs of blobs over plain http (loopback or --insecure registries) on keep-alive sockets
 * whose bodies the kernel reads straight into the caller's buffer, handed to the caller piece
 * by piece as they land. Node's http client allocates a buffer per 64 KiB read and runs every
 * piece through its parser and stream machinery, and a reader with one reused buffer still
 * copies every byte once more: for a box of a few hundred MiB those copies and allocations were
 * a large part of the pull's CPU time. Only the plain case is served here: a 200 or 206 answer
 * with a Content-Length and no Transfer-Encoding. Anything else (a redirect, an auth
 * challenge, an error, chunked encoding) gives its status and the caller asks the general
 * client (client.ts), which answers challenges and follows redirects. TLS registries use that
 * client.
 */
export interface BlobHead {
  status: number
  /** The start offset of a 206 answer's Content-Range. */
  rangeStart: number | undefined
  length: number
}

/**
 * What the caller gives for one GET: `onHead` sees the head of a plain answer and returns the
 * buffer its body is read into (at least `head.length` bytes; throwing refuses the answer);
 * `onData` then sees each piece as it lands, as a view of that buffer, in order.
 */
export interface BlobSink {
  onHead: (head: BlobHead) => Buffer
  onData: (piece: Buffer) => void
}

/** Reads of a head: small, so that the body bytes they carry (copied into the sink) are few. */
const HEAD_READ = 16 * 1024
/** At most this much of a body per read, so that hashing keeps pace and the event loop turns. */
const BODY_READ = 1 << 20
const MAX_HEAD = 64 * 1024

interface Pending {
  sink: BlobSink
  resolve: (head: BlobHead | number) => void
  reject: (error: Error) => void
  /** Bytes of a head split over reads. */
  head: Buffer | undefined
  parsed: BlobHead | undefined
  body: Buffer | undefined
  filled: number
  keepAlive: boolean
}

/**
 * One keep-alive connection. The kernel reads a head into a small buffer of the connection's,
 * and a body straight into the caller's buffer (socket `onread` with a buffer chosen before
 * each read): the bytes of a blob are copied once, from the kernel into the buffer they are
 * hashed and written from.
 */
class BlobConnection {
  readonly socket: net.Socket
  private readonly headBuffer = Buffer.allocUnsafe(HEAD_READ)
  private pending: Pending | undefined
  private closed: Error | undefined

  constructor(host: string, port: number) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {buffer: () => this.nextBuffer(), callback: (size, buffer) => this.onRead(size, buffer as Buffer)},
    })
    this.socket.on('error', (error) => this.fail(error))
    this.socket.on('close', () => this.fail(Object.assign(new Error('the connection closed early'), {code: 'ECONNRESET'})))
  }

  get usable(): boolean {
    return this.closed === undefined && this.pending === undefined
  }

  request(text: string, sink: BlobSink): Promise<BlobHead | number> {
    return new Promise((resolve, reject) => {
      if (this.closed !== undefined) {
        reject(this.closed)
        return
      }
      this.pending = {sink, resolve, reject, head: undefined, parsed: undefined, body: undefined, filled: 0, keepAlive: true}
      this.socket.write(text)
    })
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** Where the next read goes: the rest of the body being read (never past its end), else the head buffer. */
  private nextBuffer(): Buffer {
    const pending = this.pending
    if (pending?.body !== undefined && pending.filled < pending.body.length)
      return pending.body.subarray(pending.filled, Math.min(pending.body.length, pending.filled + BODY_READ))
    return this.headBuffer
  }

  private fail(error: Error): void {
    this.closed ??= error
    const pending = this.pending
    this.pending = undefined
    pending?.reject(error)
  }

  private finish(result: BlobHead | number): void {
    const pending = this.pending!
    this.pending = undefined
    if (!pending.keepAlive || typeof result === 'number') {
      this.closed ??= new Error('closed')
      this.socket.destroy()
    }
    pending.resolve(result)
  }

  private onRead(size: number, buffer: Buffer): boolean {
    const pending = this.pending
    if (pending === undefined || (buffer !== this.headBuffer && pending.body === undefined)) {
      // Bytes nobody asked for: the connection cannot be trusted for another request.
      this.fail(new Error('the registry sent bytes between answers'))
      this.socket.destroy()
      return false
    }
    try {
      if (pending.body !== undefined && buffer !== this.headBuffer) {
        // Read in place: `buffer` is the part of the body nextBuffer handed out.
        pending.filled += size
        pending.sink.onData(buffer.subarray(0, size))
      } else {
        const data = buffer.subarray(0, size)
        if (pending.parsed !== undefined) throw new Error('the registry sent more bytes than its Content-Length')
        const all = pending.head === undefined ? data : Buffer.concat([pending.head, data])
        const end = all.indexOf('\r\n\r\n')
        if (end === -1) {
          if (all.length > MAX_HEAD) throw new Error('the registry sent an oversized header')
          pending.head = Buffer.from(all)
          return true
        }
        const head = parseHead(all.subarray(0, end).toString('latin1'))
        if (typeof head === 'number') {
          this.finish(head)
          return false
        }
        pending.parsed = head.head
        pending.keepAlive = head.keepAlive
        const body = pending.sink.onHead(head.head)
        if (body.length < head.head.length) throw new Error('the buffer for the body is shorter than its Content-Length')
        pending.body = body.subarray(0, head.head.length)
        const rest = all.subarray(end + 4)
        if (rest.length > pending.body.length) throw new Error('the registry sent more bytes than its Content-Length')
        if (rest.length > 0) {
          rest.copy(pending.body, 0)
          pending.filled = rest.length
          pending.sink.onData(pending.body.subarray(0, rest.length))
        }
      }
      if (pending.filled === pending.body.length) this.finish(pending.parsed!)
    } catch (error) {
      this.fail(error as Error)
      this.socket.destroy()
      return false
    }
    return true
  }
}

/** The head of a plain answer, or the status (0: unreadable) when the general client must handle it. */
function parseHead(text: string): {head: BlobHead; keepAlive: boolean} | number {
  const lines = text.split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (status === null) return 0
  const code = Number(status[1])
  if (code !== 200 && code !== 206) return code
  let length: number | undefined
  let rangeStart: number | undefined
  let keepAlive = lines[0]!.startsWith('HTTP/1.1')
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon === -1) return 0
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-length') {
      if (!/^\d+$/.test(value) || length !== undefined) return 0
      length = Number(value)
    } else if (name === 'transfer-encoding') return code
    else if (name === 'connection') keepAlive = !/\bclose\b/i.test(value)
    else if (name === 'content-range') {
      const match = /^bytes (\d+)-/.exec(value)
      rangeStart = match === null ? undefined : Number(match[1])
    }
  }
  if (length === undefined || !Number.isSafeInteger(length)) return code
  return {head: {status: code, rangeStart, length}, keepAlive}
}

/** Keep-alive connections to one plain-http registry, one per concurrent GET. */
export class BlobSockets {
  private readonly idle: BlobConnection[] = []
  private readonly all = new Set<BlobConnection>()
  private readonly host: string
  private readonly port: number

  constructor(
    private readonly origin: URL,
    signal?: AbortSignal,
  ) {
    this.host = origin.hostname.replace(/^\[(.*)\]$/, '$1')
    this.port = Number(origin.port === '' ? 80 : origin.port)
    signal?.addEventListener('abort', () => this.close(), {once: true})
  }

  /**
   * GET `target` with `headers`; the body of a plain answer goes into the buffer
   * `sink.onHead` returns, each piece to `sink.onData` as it lands. Resolves with the head
   * once the whole body was delivered, or with the status (nothing delivered) of an answer
   * that is not a plain 200/206. Rejects when the connection drops, or with what the sink
   * threw.
   */
  async get(target: string, headers: Record<string, string>, sink: BlobSink): Promise<BlobHead | number> {
    let connection = this.idle.pop()
    while (connection !== undefined && !connection.usable) connection = this.idle.pop()
    const reused = connection !== undefined
    connection ??= this.open()
    const lines = [
      `GET ${target} HTTP/1.1`,
      `Host: ${this.origin.host}`,
      ...Object.entries(headers).map(([key, value]) => `${key}: ${value}`),
    ]
    let started = false
    try {
      const head = await connection.request(`${lines.join('\r\n')}\r\n\r\n`, {
        onHead: (value) => {
          started = true
          return sink.onHead(value)
        },
        onData: sink.onData,
      })
      if (typeof head !== 'number' && connection.usable) this.idle.push(connection)
      else this.drop(connection)
      return head
    } catch (error) {
      this.drop(connection)
      // A kept-alive connection the server closed meanwhile fails before any answer: once more on a fresh one.
      if (reused && !started && (error as NodeJS.ErrnoException).code === 'ECONNRESET') return this.get(target, headers, sink)
      throw error
    }
  }

  close(): void {
    for (const connection of this.all) connection.destroy()
    this.all.clear()
    this.idle.length = 0
  }

  private open(): BlobConnection {
    const connection = new BlobConnection(this.host, this.port)
    this.all.add(connection)
    return connection
  }

  private drop(connection: BlobConnection): void {
    connection.destroy()
    this.all.delete(connection)
  }
}
