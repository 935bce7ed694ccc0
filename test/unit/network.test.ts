import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {bridgeHelperError, tapName} from '../../src/driver/qemu/network/bridge.js'
import {guestNetworkScript, parseGuestNetworkReport} from '../../src/network/guest.js'
import {encodeFrame, FrameReader, startHub, type Hub} from '../../src/driver/qemu/network/hub.js'
import {privateNetworkKey} from '../../src/driver/qemu/network/private.js'

const mac = (last: number): Buffer => Buffer.from([0x52, 0x54, 0, 0, 0, last])
const frame = (to: Buffer, from: Buffer, payload: string): Buffer =>
  Buffer.concat([to, from, Buffer.from([0x08, 0x00]), Buffer.from(payload)])
const BROADCAST = Buffer.alloc(6, 0xff)

describe('private network switch', () => {
  let dir: string | undefined
  let hub: Hub | undefined
  const clients: net.Socket[] = []

  afterEach(async () => {
    for (const client of clients.splice(0)) client.destroy()
    await hub?.close()
    hub = undefined
    if (dir !== undefined) rmSync(dir, {recursive: true, force: true})
    dir = undefined
  })

  /** A port on the hub that records the payloads of the frames it receives. */
  async function port(socket: string): Promise<{client: net.Socket; received: string[]}> {
    const client = net.connect(socket)
    clients.push(client)
    const received: string[] = []
    const reader = new FrameReader()
    client.on('data', (chunk: Buffer) => {
      for (const got of reader.push(chunk)) received.push(got.subarray(14).toString())
    })
    await new Promise((resolve) => client.once('connect', resolve))
    return {client, received}
  }
  const settle = () => new Promise((resolve) => setTimeout(resolve, 100))

  it('reassembles length-prefixed frames split anywhere in the stream', () => {
    const reader = new FrameReader()
    const wire = Buffer.concat([encodeFrame(Buffer.from('first')), encodeFrame(Buffer.from('second'))])
    const frames = [...wire].flatMap((byte) => reader.push(Buffer.from([byte])))
    expect(frames.map(String)).toEqual(['first', 'second'])
    expect(() => reader.push(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(/too large/)
  })

  it('floods broadcasts to the other ports, then sends unicast only to the learned port', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vm-hub-'))
    const socket = path.join(dir, 'hub.sock')
    hub = await startHub(socket)
    const [a, b, c] = [await port(socket), await port(socket), await port(socket)]
    a.client.write(encodeFrame(frame(BROADCAST, mac(1), 'who-has')))
    b.client.write(encodeFrame(frame(BROADCAST, mac(2), 'hello')))
    await settle()
    expect(a.received).toEqual(['hello'])
    expect(b.received).toEqual(['who-has'])
    expect(c.received).toEqual(['who-has', 'hello'])
    // b now answers a directly: c sees nothing of it.
    b.client.write(Buffer.concat([encodeFrame(frame(mac(1), mac(2), 'reply-1')), encodeFrame(frame(mac(1), mac(2), 'reply-2'))]))
    await settle()
    expect(a.received).toEqual(['hello', 'reply-1', 'reply-2'])
    expect(c.received).toEqual(['who-has', 'hello'])
    expect(hub.ports()).toBe(3)
    a.client.destroy()
    await settle()
    expect(hub.ports()).toBe(2)
    // a's MAC is forgotten with its port: frames to it are flooded again.
    b.client.write(encodeFrame(frame(mac(1), mac(2), 'lost')))
    await settle()
    expect(c.received.at(-1)).toBe('lost')
  })

  it('names networks by name across projects, and per project without one', () => {
    expect(privateNetworkKey('backend', '/a')).toBe(privateNetworkKey('backend', '/b'))
    expect(privateNetworkKey(undefined, '/a')).not.toBe(privateNetworkKey(undefined, '/b'))
    expect(privateNetworkKey(undefined, '/a')).not.toBe(privateNetworkKey('backend', '/a'))
    expect(privateNetworkKey(undefined, '/a')).toMatch(/^[0-9a-f]{16}$/)
  })
})

describe('bridged NICs', () => {
  it('names taps after the machine, unique per machine id and NIC, within 15 characters', () => {
    expect(tapName('web', 'a1b2c3d4e5', 1)).toBe('web-a1b21')
    expect(tapName('a-very-long-machine-name', 'ffff0000', 2)).toBe('a-very--ffff2')
    expect(tapName('web', 'a1b2c3d4e5', 1)).not.toBe(tapName('web', '99b2c3d4e5', 1))
    for (const name of [tapName('x'.repeat(40), 'abcdef', 9), tapName('db', '0123', 1)]) expect(name.length).toBeLessThanOrEqual(15)
  })

  it("explains the bridge helper's failures: the ACL file, the helper's rights, or other", () => {
    const denied = bridgeHelperError(
      'web',
      ['br0'],
      'access denied by acl file\nqemu-system-x86_64: -netdev bridge,id=net1,br=br0: bridge helper failed\n',
    )
    expect(denied?.message).toBe("Machine web: QEMU's bridge helper does not allow bridge br0")
    expect(denied?.hint).toContain("printf 'allow br0\\n' >> /etc/qemu/bridge.conf")
    expect(denied?.details).toEqual(['The bridge helper said: access denied by acl file'])
    const noAcl = bridgeHelperError('web', ['br0'], "failed to parse default acl file `/etc/qemu/bridge.conf'\nbridge helper failed")
    expect(noAcl?.message).toContain('does not allow bridge br0')
    const rights = bridgeHelperError('web', ['br0'], 'failed to open /dev/net/tun: Permission denied\nbridge helper failed')
    expect(rights?.message).toBe("Machine web: QEMU's bridge helper may not create a tap device for br0")
    expect(rights?.hint).toContain('chmod u+s /usr/lib/qemu/qemu-bridge-helper')
    expect(bridgeHelperError('web', ['br0'], 'Could not set up host forwarding rule')).toBeUndefined()
  })
})

describe('guest NIC configuration', () => {
  const nics = [
    {mac: '52:54:00:AA:00:01', address: '192.168.56.10/24'},
    {mac: '52:54:00:aa:00:02', address: undefined},
  ]

  it('is a valid POSIX shell script that configures each NIC by its MAC', () => {
    const script = guestNetworkScript(nics, 5)
    expect(spawnSync('sh', ['-n'], {input: script}).status).toBe(0)
    expect(script).toContain("configure '52:54:00:aa:00:01' '192.168.56.10/24'")
    expect(script).toContain("configure '52:54:00:aa:00:02' ''")
    expect(script).toContain('deadline=$(( $(date +%s) + 5 ))')
    expect(script).not.toContain('\\${')
  })

  it('reads back the address of each NIC, in the order asked, and what went wrong', () => {
    const report = 'nic 52:54:00:aa:00:02 eth2 10.77.0.51/24\nnic 52:54:00:aa:00:01 eth1 -\n'
    expect(parseGuestNetworkReport(nics, report)).toEqual([
      {mac: '52:54:00:aa:00:01', device: 'eth1', address: undefined, error: undefined},
      {mac: '52:54:00:aa:00:02', device: 'eth2', address: '10.77.0.51/24', error: undefined},
    ])
    expect(parseGuestNetworkReport(nics, 'error 52:54:00:aa:00:01 no-interface\n')).toEqual([
      {mac: '52:54:00:aa:00:01', device: undefined, address: undefined, error: 'no-interface'},
      {mac: '52:54:00:aa:00:02', device: undefined, address: undefined, error: 'not-reported'},
    ])
  })
})
