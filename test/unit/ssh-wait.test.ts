import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {ExternalError, UserError} from '../../src/errors/errors.js'
import {labelledTail, sshBanner, waitForSsh, type BootWatch} from '../../src/ssh/wait.js'
import {sampleTarget} from '../helpers/ssh-target.js'

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

/** A BootWatch as an engine provides it, with a console that says `console` and a process that lives while `alive()`. */
function fakeWatch(
  alive: () => boolean | Promise<boolean>,
  console = 'Booting Linux\n[    1.0] Run /init as init process',
): BootWatch & {asked: number[]} {
  const asked: number[] = []
  return {
    engine: 'FakeEngine',
    isAlive: alive,
    asked,
    async consoleTail(lines) {
      asked.push(lines)
      return console
    },
    async bootEvidence() {
      return [...labelledTail('console (/run/fake/console.log):', console), ...labelledTail('FakeEngine said:', 'bye')]
    },
  }
}

describe('waiting for SSH', () => {
  const servers: net.Server[] = []
  afterEach(() => {
    vi.unstubAllEnvs()
    for (const server of servers.splice(0)) server.close()
  })

  /** A port on 127.0.0.1 that refuses connections (nothing listens on it any more). */
  async function closedPort(): Promise<number> {
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const {port} = server.address() as net.AddressInfo
    await new Promise((resolve) => server.close(resolve))
    return port
  }

  /** A server on 127.0.0.1 that greets like sshd and counts its connections. */
  async function greeter(): Promise<{port: number; connections: () => number}> {
    let count = 0
    const server = net.createServer((socket) => {
      count += 1
      socket.on('error', () => {})
      socket.end('SSH-2.0-fake\r\n')
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return {port: (server.address() as net.AddressInfo).port, connections: () => count}
  }

  it('fails at once, naming the engine, when the engine is not running', async () => {
    const target = {...sampleTarget, port: await closedPort()}
    const start = Date.now()
    const failure = waitForSsh({target, timeoutMs: 30_000, watch: fakeWatch(() => false)})
    await expect(failure).rejects.toMatchObject({
      code: 'BOOT_FAILED',
      message: 'FakeEngine exited while the machine was booting',
      details: [
        'console (/run/fake/console.log):',
        '  | Booting Linux',
        '  | [    1.0] Run /init as init process',
        'FakeEngine said:',
        '  | bye',
      ],
    })
    expect(Date.now() - start).toBeLessThan(1000)
  })

  it('notices an engine that stops while it waits, asked through a promise', async () => {
    const target = {...sampleTarget, port: await closedPort()}
    const dies = Date.now() + 600
    const start = Date.now()
    await expect(waitForSsh({target, timeoutMs: 30_000, watch: fakeWatch(async () => Date.now() < dies)})).rejects.toMatchObject({
      code: 'BOOT_FAILED',
      message: 'FakeEngine exited while the machine was booting',
    })
    expect(Date.now() - start).toBeLessThan(3000)
  })

  it('fails at once when the console shows a kernel panic', async () => {
    const target = {...sampleTarget, port: await closedPort()}
    const watch = fakeWatch(
      () => true,
      '[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n[    2.2] ---[ end Kernel panic',
    )
    await expect(waitForSsh({target, timeoutMs: 30_000, watch})).rejects.toMatchObject({
      code: 'BOOT_FAILED',
      message: 'The guest kernel panicked during boot',
    })
    expect(watch.asked[0]).toBeGreaterThanOrEqual(40)
  })

  it('times out with the boot evidence, reporting the console as it goes', async () => {
    const target = {...sampleTarget, port: await closedPort()}
    const progress: string[] = []
    await expect(
      waitForSsh({target, timeoutMs: 1200, watch: fakeWatch(() => true), onProgress: (line) => progress.push(line)}),
    ).rejects.toMatchObject({
      code: 'BOOT_TIMEOUT',
      message: 'The machine did not answer on SSH within 1 s (boot_timeout)',
      details: expect.arrayContaining(['console (/run/fake/console.log):', 'FakeEngine said:']),
    })
    expect(progress.at(-1)).toBe('[    1.0] Run /init as init process')
  })

  it("names the machine's own SSH endpoint when its host key changed", async () => {
    // A stand-in ssh that fails as OpenSSH does when the host key is not the recorded one.
    const bin = mkdtempSync(path.join(tmpdir(), 'vm-unit-wait-'))
    writeFileSync(path.join(bin, 'ssh'), '#!/bin/sh\necho "Host key verification failed." >&2\nexit 255\n', {mode: 0o755})
    vi.stubEnv('PATH', `${bin}:${process.env.PATH}`)
    try {
      const server = await greeter()
      const target = {...sampleTarget, host: '127.0.0.1', port: server.port}
      const failure = await waitForSsh({target, timeoutMs: 10_000, watch: fakeWatch(() => true)}).catch((error: unknown) => error)
      expect(failure).toMatchObject({code: 'SSH_HOST_KEY_CHANGED'})
      expect((failure as UserError).hint).toContain(`Another guest may answer at 127.0.0.1:${server.port}`)
    } finally {
      rmSync(bin, {recursive: true, force: true})
    }
  })

  it("a guest whose sshd is up already: the caller's login runs at once, with no banner connection first; its work failing ends the wait", async () => {
    const server = await greeter()
    const target = {...sampleTarget, port: server.port}
    const logins: number[] = []
    const login = async () => void logins.push(server.connections())
    await waitForSsh({target, timeoutMs: 10_000, watch: fakeWatch(() => true), sshdUp: true, login})
    expect(logins).toEqual([0])
    // Without sshdUp, sshd's banner is polled first.
    await waitForSsh({target, timeoutMs: 10_000, watch: fakeWatch(() => true), login})
    expect(logins).toEqual([0, 1])
    // A vm error of the login's own work (not of ssh) is not waited out.
    const failed = {code: 'GUEST_CLOCK'}
    const refused = waitForSsh({
      target,
      timeoutMs: 10_000,
      watch: fakeWatch(() => true),
      sshdUp: true,
      login: async () => {
        throw new UserError('clock', failed)
      },
    })
    await expect(refused).rejects.toMatchObject(failed)
  })

  it('a refused key is waited out for 20 s, or for VM_KEY_REFUSED_MS (the e2e tests shorten it), then named', async () => {
    const server = await greeter()
    const target = {...sampleTarget, port: server.port}
    const login = async (): Promise<void> => {
      throw new ExternalError('ssh failed', 'ssh', [], 'vm@127.0.0.1: Permission denied (publickey).')
    }
    vi.stubEnv('VM_KEY_REFUSED_MS', '1500')
    const start = Date.now()
    await expect(waitForSsh({target, timeoutMs: 30_000, watch: fakeWatch(() => true), login})).rejects.toMatchObject({
      code: 'SSH_KEY_REFUSED',
    })
    expect(Date.now() - start).toBeGreaterThanOrEqual(1500)
    expect(Date.now() - start).toBeLessThan(5000)
    // Without the knob (or with a value that is not a positive number of ms) the window is 20 s.
    vi.stubEnv('VM_KEY_REFUSED_MS', 'soon')
    await expect(waitForSsh({target, timeoutMs: 3000, watch: fakeWatch(() => true), login})).rejects.toMatchObject({
      code: 'BOOT_TIMEOUT',
    })
  })

  it('logs in through the jump host, where this host cannot see the guest to probe its banner', async () => {
    const jump = await greeter()
    // The guest's port is closed from here: only a login through the jump host can reach it.
    const target = {...sampleTarget, port: await closedPort(), jump: {host: '127.0.0.1', port: jump.port, user: 'ops'}}
    await expect(waitForSsh({target, timeoutMs: 2500, watch: fakeWatch(() => true)})).rejects.toMatchObject({code: 'BOOT_TIMEOUT'})
    expect(jump.connections()).toBeGreaterThan(0)
  })
})

describe('boot evidence', () => {
  it('labels a tail and indents its lines, or says it is empty', () => {
    expect(labelledTail('serial log (/m/serial.log):', 'one\ntwo')).toEqual(['serial log (/m/serial.log):', '  | one', '  | two'])
    expect(labelledTail('serial log (/m/serial.log):', '')).toEqual(['serial log (/m/serial.log):', '  (empty)'])
  })
})
