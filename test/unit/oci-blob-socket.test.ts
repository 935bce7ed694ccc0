import {randomBytes} from 'node:crypto'
import {createServer, type Server} from 'node:http'
import type net from 'node:net'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobSockets, type BlobHead, type BlobSink} from '../../src/box/oci/blob-socket.js'

/**
 * The plain-http blob reader against a real HTTP server on 127.0.0.1: plain answers are
 * delivered and their connections kept, everything else is handed back untouched.
 */
const body = randomBytes(3 * 1024 * 1024 + 17)
let server: Server
let origin: URL
let connections = 0

beforeAll(async () => {
  server = createServer((request, response) => {
    const url = request.url ?? ''
    if (url === '/plain') {
      const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '')
      if (range !== null) {
        const start = Number(range[1])
        response.writeHead(206, {
          'content-length': body.length - start,
          'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
        })
        response.end(body.subarray(start))
      } else {
        response.writeHead(200, {'content-length': body.length})
        response.end(body)
      }
    } else if (url === '/redirect') {
      response.writeHead(307, {location: '/plain', 'content-length': 0})
      response.end()
    } else if (url === '/chunked') {
      response.writeHead(200, {'transfer-encoding': 'chunked'})
      response.end(body.subarray(0, 1000))
    } else if (url === '/close') {
      response.writeHead(200, {'content-length': body.length, connection: 'close'})
      response.end(body)
    } else if (url === '/drop') {
      response.writeHead(200, {'content-length': body.length})
      response.write(body.subarray(0, 100_000), () => response.socket?.destroy())
    } else {
      response.writeHead(404, {'content-length': 0})
      response.end()
    }
  })
  server.on('connection', (_socket: net.Socket) => connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

/** A sink that reads each body into a buffer of its own and records the pieces delivered. */
function collect(onPiece?: (piece: Buffer) => void) {
  const state: {head: BlobHead | undefined; into: Buffer | undefined; pieces: Buffer[]; filled: number} = {
    head: undefined,
    into: undefined,
    pieces: [],
    filled: 0,
  }
  const sink: BlobSink = {
    onHead: (value) => {
      state.head = value
      state.into = Buffer.alloc(value.length)
      return state.into
    },
    onData: (piece) => {
      state.pieces.push(piece)
      state.filled += piece.length
      onPiece?.(piece)
    },
  }
  return {state, sink, data: () => state.into?.subarray(0, state.filled) ?? Buffer.alloc(0)}
}

async function get(sockets: BlobSockets, target: string, headers: Record<string, string> = {}) {
  const {state, sink, data} = collect()
  const result = await sockets.get(target, headers, sink)
  return {result, head: state.head, data: data()}
}

describe('plain-http blob sockets', () => {
  it('delivers plain answers and keeps their connection for the next GET', async () => {
    const sockets = new BlobSockets(origin)
    try {
      connections = 0
      const first = await get(sockets, '/plain')
      expect(first.result).toMatchObject({status: 200, length: body.length})
      expect(first.data.equals(body)).toBe(true)
      const second = await get(sockets, '/plain', {range: 'bytes=1000-'})
      expect(second.head).toMatchObject({status: 206, rangeStart: 1000})
      expect(second.data.equals(body.subarray(1000))).toBe(true)
      expect(connections).toBe(1)
      // Connection: close is honoured: the next GET opens a fresh connection.
      expect((await get(sockets, '/close')).data.equals(body)).toBe(true)
      expect((await get(sockets, '/plain')).data.equals(body)).toBe(true)
      expect(connections).toBe(2)
    } finally {
      sockets.close()
    }
  })

  it('hands back redirects, chunked answers and errors without delivering a byte', async () => {
    const sockets = new BlobSockets(origin)
    try {
      for (const [target, status] of [
        ['/redirect', 307],
        ['/chunked', 200],
        ['/missing', 404],
      ] as const) {
        const answer = await get(sockets, target)
        expect(answer.result, target).toBe(status)
        expect(answer.head, target).toBeUndefined()
        expect(answer.data.length, target).toBe(0)
      }
      expect((await get(sockets, '/plain')).data.equals(body)).toBe(true)
    } finally {
      sockets.close()
    }
  })

  it('reads a body straight into the buffer the caller gives, and hands over views of it in order', async () => {
    const sockets = new BlobSockets(origin)
    try {
      const into = Buffer.alloc(body.length + 100, 0xaa)
      const pieces: Buffer[] = []
      const head = await sockets.get(
        '/plain',
        {},
        {
          onHead: () => into.subarray(100),
          onData: (piece) => pieces.push(piece),
        },
      )
      expect(head).toMatchObject({status: 200, length: body.length})
      expect(into.subarray(100).equals(body)).toBe(true)
      expect(into.subarray(0, 100).every((byte) => byte === 0xaa)).toBe(true)
      // Every piece is the next part of the caller's buffer itself (no copy between them).
      let offset = 100
      for (const piece of pieces) {
        expect(piece.buffer).toBe(into.buffer)
        expect(piece.byteOffset).toBe(into.byteOffset + offset)
        offset += piece.length
      }
      expect(offset).toBe(into.length)
      // A buffer shorter than the Content-Length is refused before a byte lands in it.
      const short = Buffer.alloc(1000, 0xbb)
      await expect(sockets.get('/plain', {}, {onHead: () => short, onData: () => undefined})).rejects.toThrow(/shorter/)
      expect(short.every((byte) => byte === 0xbb)).toBe(true)
      expect((await get(sockets, '/plain')).data.equals(body)).toBe(true)
    } finally {
      sockets.close()
    }
  })

  it('rejects a dropped answer as a transient reset after delivering what arrived', async () => {
    const sockets = new BlobSockets(origin)
    const {sink, data} = collect()
    try {
      await expect(sockets.get('/drop', {}, sink)).rejects.toMatchObject({code: 'ECONNRESET'})
      const got = data()
      expect(got.length).toBeGreaterThan(0)
      expect(got.equals(body.subarray(0, got.length))).toBe(true)
      expect((await get(sockets, '/plain')).data.equals(body)).toBe(true)
    } finally {
      sockets.close()
    }
  })

  it('stops at what the body callback throws and aborts with the signal', async () => {
    const controller = new AbortController()
    const sockets = new BlobSockets(origin, controller.signal)
    await expect(
      sockets.get(
        '/plain',
        {},
        collect(() => {
          throw new Error('too long')
        }).sink,
      ),
    ).rejects.toThrow('too long')
    await expect(
      sockets.get(
        '/plain',
        {},
        {
          onHead: () => {
            throw new Error('refused head')
          },
          onData: () => undefined,
        },
      ),
    ).rejects.toThrow('refused head')
    const pending = sockets.get('/plain', {}, collect(() => controller.abort()).sink)
    await expect(pending).rejects.toBeDefined()
  })
})
