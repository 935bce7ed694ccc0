import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {probeKvm, runProbeGuest} from '../../src/driver/qemu/accel.js'

const qemu = 'qemu-system-x86_64'

describe('KVM probe with real QEMU', () => {
  it('the probe guest runs and exits under TCG', async () => {
    const start = Date.now()
    const result = await runProbeGuest(qemu, 'tcg', 10_000)
    expect(result).toEqual({ok: true, detail: 'ran a guest'})
    console.log(`TCG probe guest: ${Date.now() - start} ms`)
  })

  it('answers quickly and caches the answer per boot', async () => {
    const cache = path.join(mkdtempSync(path.join(tmpdir(), 'vm-accel-')), 'kvm.json')
    const first = await probeKvm(qemu, cache)
    console.log(`KVM probe: usable=${first.usable} (${first.reason}) in ${first.ms} ms`)
    expect(first.ms).toBeLessThan(5000)
    if (process.env.VM_EXPECT_KVM === 'broken') expect(first.usable).toBe(false)
    const second = await probeKvm(qemu, cache)
    expect(second).toEqual(first)
  })

  it('a missing device is reported as such', async () => {
    const cache = path.join(mkdtempSync(path.join(tmpdir(), 'vm-accel-')), 'kvm.json')
    const probe = await probeKvm(qemu, cache, 1500, '/dev/no-such-kvm')
    expect(probe).toMatchObject({usable: false, reason: '/dev/no-such-kvm does not exist'})
  })
})
