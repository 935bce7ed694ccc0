import {mkdtempSync} from 'node:fs'
import {createSocket} from 'node:dgram'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {resolveForwards} from '../../src/network/forwards.js'

const leases = () => mkdtempSync(path.join(tmpdir(), 'vm-fwd-'))
const port = (host: number, extra: Partial<{protocol: 'tcp' | 'udp'; autoCorrect: boolean}> = {}) => ({
  guest: 80,
  host,
  hostIp: '127.0.0.1',
  protocol: extra.protocol ?? ('tcp' as const),
  autoCorrect: extra.autoCorrect ?? false,
})

describe('forwarded ports', () => {
  it('keeps free host ports as they are', async () => {
    expect(await resolveForwards('web', [port(46301)], leases(), 'id', () => {})).toEqual([
      {guest: 80, host: 46301, hostIp: '127.0.0.1', protocol: 'tcp'},
    ])
  })

  it('a taken TCP port is an error naming the port and the machine', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(46302, '127.0.0.1', resolve))
    try {
      await expect(resolveForwards('web', [port(46302)], leases(), 'id', () => {})).rejects.toThrow(
        'Host port 127.0.0.1:46302/tcp (forwarded to guest port 80 of machine web) is already in use',
      )
    } finally {
      server.close()
    }
  })

  it('a taken UDP port is detected too', async () => {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(46303, '127.0.0.1', resolve))
    try {
      await expect(resolveForwards('web', [port(46303, {protocol: 'udp'})], leases(), 'id', () => {})).rejects.toThrow(/46303\/udp/)
    } finally {
      socket.close()
    }
  })

  it('auto_correct picks a free port and reports it', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(46304, '127.0.0.1', resolve))
    const said: string[] = []
    try {
      const [resolved] = await resolveForwards('web', [port(46304, {autoCorrect: true})], leases(), 'id', (text) => said.push(text))
      expect(resolved?.requested).toBe(46304)
      expect(resolved?.host).toBeGreaterThanOrEqual(2200)
      expect(resolved?.host).toBeLessThanOrEqual(2299)
      expect(said[0]).toMatch(/host port 46304 for guest port 80 is in use; forwarding 127\.0\.0\.1:22\d\d instead \(auto_correct\)/)
    } finally {
      server.close()
    }
  })
})
