import {mkdtempSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {leasePort, releaseLease, transferLease} from '../../src/network/ports.js'

function leaseDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'vm-lease-'))
}

// A range well away from the default so tests never meet running machines.
const range: [number, number] = [46200, 46210]

describe('port leases', () => {
  it('machines starting at the same moment get different ports', async () => {
    const dir = leaseDir()
    const ports = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => leasePort(dir, owner, range)))
    expect(new Set(ports).size).toBe(4)
  })

  it('skips a port another program listens on', async () => {
    const dir = leaseDir()
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(range[0], '127.0.0.1', resolve))
    try {
      expect(await leasePort(dir, 'a', range)).toBe(range[0] + 1)
    } finally {
      server.close()
    }
  })

  it('takes over a lease whose process is gone, and frees a released one', async () => {
    const dir = leaseDir()
    const first = await leasePort(dir, 'a', range)
    await transferLease(dir, first, 'a', 999_999_999)
    expect(await leasePort(dir, 'b', range)).toBe(first)
    await releaseLease(dir, first, 'b')
    expect(await leasePort(dir, 'c', range)).toBe(first)
  })

  it('fails clearly when the range is full', async () => {
    const dir = leaseDir()
    await leasePort(dir, 'a', [46220, 46220])
    await expect(leasePort(dir, 'b', [46220, 46220])).rejects.toThrow('no free port between 46220 and 46220 on 127.0.0.1')
  })
})
