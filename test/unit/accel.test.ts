import {describe, expect, it} from 'vitest'

import {chooseAccelerator, probeFirmware, PROBE_EXIT} from '../../src/driver/qemu/accel.js'

const works = {usable: true, reason: 'KVM works', ms: 120}
const broken = {usable: false, reason: 'a KVM vCPU did not run a test guest within 1500 ms', ms: 1500}

describe('accelerator choice', () => {
  it('auto takes KVM when it works', () => {
    expect(chooseAccelerator('auto', works)).toEqual({accel: 'kvm'})
  })

  it('auto falls back to TCG with a one-line warning', () => {
    const choice = chooseAccelerator('auto', broken)
    expect(choice.accel).toBe('tcg')
    expect(choice.warning).toMatch(/^KVM cannot be used \(a KVM vCPU did not run .*\); using TCG/)
    expect(choice.warning).not.toContain('\n')
  })

  it('tcg is always TCG', () => {
    expect(chooseAccelerator('tcg', works)).toEqual({accel: 'tcg'})
  })

  it('kvm forced and unusable is an error that says why', () => {
    expect(() => chooseAccelerator('kvm', broken)).toThrowError(
      /KVM was asked for \(accel: kvm\) but cannot be used: a KVM vCPU did not run/,
    )
  })
})

describe('probe firmware', () => {
  it('is 64 KiB with a jump to the program at the reset vector', () => {
    const rom = probeFirmware()
    expect(rom.length).toBe(65536)
    expect([...rom.subarray(0xfff0, 0xfff3)]).toEqual([0xe9, 0x0d, 0x00])
    expect(rom[0]).toBe(0xfa) // cli
    expect(rom.includes(Buffer.from([0xb0, 0x2a, 0xe6, 0xf4]))).toBe(true) // mov al, 0x2a; out 0xf4, al
    expect(PROBE_EXIT).toBe(85)
  })
})
