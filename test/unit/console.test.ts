import {mkdtempSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'

import {afterEach, describe, expect, it} from 'vitest'

import {pipeConsole} from '../../src/machine/console.js'

let server: net.Server | undefined
afterEach(() => server?.close())

/** A console socket like QEMU's: one client; it records what it got and greets the client. */
async function fakeConsole(onClient: (socket: net.Socket, received: Buffer[]) => void): Promise<{socket: string; received: Buffer[]}> {
  const socket = path.join(mkdtempSync(path.join(tmpdir(), 'vm-console-')), 'console.sock')
  const received: Buffer[] = []
  server = net.createServer((client) => {
    client.on('data', (chunk) => received.push(chunk))
    onClient(client, received)
  })
  await new Promise<void>((resolve) => server!.listen(socket, resolve))
  return {socket, received}
}

describe('vm console attachment', () => {
  it('passes keys to the guest and its output back, until Ctrl-] (nothing after it is sent)', async () => {
    const {socket, received} = await fakeConsole((client) => client.write('login: '))
    const input = new PassThrough()
    const output = new PassThrough()
    let shown = ''
    output.on('data', (chunk: Buffer) => (shown += chunk.toString()))
    let attached = false
    const ended = pipeConsole(socket, input, output, () => {
      attached = true
      input.write('root\r')
      setTimeout(() => input.write(Buffer.from([0x61, 0x1d, 0x62])), 100)
    })
    expect(await ended).toBe('detached')
    expect(attached).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(Buffer.concat(received).toString()).toBe('root\ra')
    expect(shown).toBe('login: ')
  })

  it('ends as closed when the machine closes the console', async () => {
    const {socket} = await fakeConsole((client) => setTimeout(() => client.end('bye'), 50))
    expect(await pipeConsole(socket, new PassThrough(), new PassThrough(), () => {})).toBe('closed')
  })

  it('says which socket could not be reached', async () => {
    await expect(pipeConsole('/nonexistent/console.sock', new PassThrough(), new PassThrough(), () => {})).rejects.toThrow(
      /Cannot attach to the console socket \/nonexistent\/console\.sock/,
    )
  })
})
