import net from 'node:net'

import {afterEach, describe, expect, it} from 'vitest'

import {sshBanner} from '../../src/ssh/wait.js'

describe('the SSH banner probe', () => {
  const servers: net.Server[] = []
  afterEach(() => {
    for (const server of servers.splice(0)) server.close()
  })

  /** A server on 127.0.0.1 that treats each connection with `handler`; its port. */
  async function serve(handler: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer(handler)
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return (server.address() as net.AddressInfo).port
  }

  it('is true once a server greets with SSH-', async () => {
    const port = await serve((socket) => socket.write('SSH-2.0-dropbear\r\n'))
    expect(await sshBanner('127.0.0.1', port, 1000)).toBe(true)
  })

  it('is false at once for a connection that is reset or closed, and for another protocol', async () => {
    const closed = await serve((socket) => socket.destroy())
    const start = Date.now()
    expect(await sshBanner('127.0.0.1', closed, 5000)).toBe(false)
    expect(Date.now() - start).toBeLessThan(1000)
    const http = await serve((socket) => socket.write('HTTP/1.1 400 Bad Request\r\n'))
    expect(await sshBanner('127.0.0.1', http, 5000)).toBe(false)
  })

  it('gives up after its time on a connection that hangs', async () => {
    const port = await serve(() => {})
    const start = Date.now()
    expect(await sshBanner('127.0.0.1', port, 300)).toBe(false)
    expect(Date.now() - start).toBeGreaterThanOrEqual(290)
  })
})
