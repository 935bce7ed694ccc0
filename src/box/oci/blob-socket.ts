import net from 'node:net'

/**
 * GETs of blobs over plain http (loopback or --insecure registries) on keep-alive sockets
 * whose bytes are read into one reused 1 MiB buffer and handed to the caller as they arrive.
 * Node's http client allocates a buffer per 64 KiB read and runs every piece through its
 * parser and stream machinery: for a box of a few hundred MiB that was about half of the
 * pull's CPU time. Only the plain case is served here: a 200 or 206 answer with a
 * Content-Length and no Transfer-Encoding. Anything else (a redirect, an auth challenge, an
 * error, chunked encoding) gives its status and the caller asks the general client
 * (client.ts), which answers challenges and follows redirects. TLS registries use that client.
 */
export interface BlobHead {
  status: number
  /** The start offset of a 206 answer's Content-Range. */
  rangeStart: number | undefined
  length: number
}

const READ_BUFFER = 1 << 20
const MAX_HEAD = 64 * 1024

interface Pending {
  /** Called with each piece of the body; it must not keep the buffer (it is reused). */
  onData: (data: Buffer) => void
  onHead: (head: BlobHead) => void
  resolve: (head: BlobHead | number) => void
  reject: (error: Error) => void
  head: Buffer[]
  headSize: number
  parsed: BlobHead | undefined
  remaining: number
  keepAlive: boolean
}

class BlobConnection {
  readonly socket: net.Socket
  private pending: Pending | undefined
  private closed: Error | undefined

  constructor(host: string, port: number) {
    const buffer = Buffer.allocUnsafe(READ_BUFFER)
    this.socket = net.connect({host, port, noDelay: true, onread: {buffer, callback: (size) => this.onRead(buffer.subarray(0, size))}})
    this.socket.on('error', (error) => this.fail(error))
    this.socket.on('close', () => this.fail(Object.assign(new Error('the connection closed early'), {code: 'ECONNRESET'})))
  }

  get usable(): boolean {
    return this.closed === undefined && this.pending === undefined
  }

  request(text: string, onData: (data: Buffer) => void, onHead: (head: BlobHead) => void): Promise<BlobHead | number> {
    return new Promise((resolve, reject) => {
      if (this.closed !== undefined) {
        reject(this.closed)
        return
      }
      this.pending = {onData, onHead, resolve, reject, head: [], headSize: 0, parsed: undefined, remaining: 0, keepAlive: true}
      this.socket.write(text)
    })
  }

  destroy(): void {
    this.socket.destroy()
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

  private onRead(data: Buffer): boolean {
    const pending = this.pending
    if (pending === undefined) {
      // Bytes nobody asked for: the connection cannot be trusted for another request.
      this.fail(new Error('the registry sent bytes between answers'))
      this.socket.destroy()
      return false
    }
    try {
      let body = data
      if (pending.parsed === undefined) {
        pending.head.push(Buffer.from(data))
        pending.headSize += data.length
        const all = pending.head.length === 1 ? pending.head[0]! : Buffer.concat(pending.head)
        const end = all.indexOf('\r\n\r\n')
        if (end === -1) {
          if (pending.headSize > MAX_HEAD) throw new Error('the registry sent an oversized header')
          pending.head = [all]
          return true
        }
        const head = parseHead(all.subarray(0, end).toString('latin1'))
        if (typeof head === 'number') {
          this.finish(head)
          return false
        }
        pending.parsed = head.head
        pending.keepAlive = head.keepAlive
        pending.remaining = head.head.length
        pending.onHead(head.head)
        body = all.subarray(end + 4)
      }
      if (body.length > pending.remaining) throw new Error('the registry sent more bytes than its Content-Length')
      if (body.length > 0) {
        pending.remaining -= body.length
        pending.onData(body)
      }
      if (pending.remaining === 0) this.finish(pending.parsed)
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
   * GET `target` with `headers`; the body's pieces go to `onData` as they arrive, after
   * `onHead`. Resolves with the head once the whole body was delivered, or with the status
   * (nothing delivered) of an answer that is not a plain 200/206. Rejects when the connection
   * drops, or with what `onHead` or `onData` threw.
   */
  async get(
    target: string,
    headers: Record<string, string>,
    onHead: (head: BlobHead) => void,
    onData: (data: Buffer) => void,
  ): Promise<BlobHead | number> {
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
      const head = await connection.request(`${lines.join('\r\n')}\r\n\r\n`, onData, (value) => {
        started = true
        onHead(value)
      })
      if (typeof head !== 'number' && connection.usable) this.idle.push(connection)
      else this.drop(connection)
      return head
    } catch (error) {
      this.drop(connection)
      // A kept-alive connection the server closed meanwhile fails before any answer: once more on a fresh one.
      if (reused && !started && (error as NodeJS.ErrnoException).code === 'ECONNRESET') return this.get(target, headers, onHead, onData)
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
