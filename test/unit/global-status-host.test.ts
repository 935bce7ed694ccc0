import {describe, expect, it} from 'vitest'

import {machineHost} from '../../src/machine/global-status.js'
import type {MachineRecord} from '../../src/machine/record.js'

const record = (libvirt?: {uri: string}): MachineRecord =>
  ({
    id: 'abc',
    name: 'web',
    ...(libvirt === undefined ? {} : {driver: 'libvirt', libvirt: {...libvirt, pool: 'default', domain: 'vm-web-abc'}}),
  }) as unknown as MachineRecord

describe('vm global-status: the host of each machine', () => {
  it('is local for QEMU machines and libvirt machines on a local URI', () => {
    expect(machineHost(record())).toBe('local')
    expect(machineHost(record({uri: 'qemu:///system'}))).toBe('local')
    expect(machineHost(record({uri: 'qemu:///system?socket=/tmp/x/libvirt-sock'}))).toBe('local')
    expect(machineHost(record({uri: 'qemu+unix:///system'}))).toBe('local')
  })

  it("is the remote libvirt URI's host, without user, port or path", () => {
    expect(machineHost(record({uri: 'qemu+ssh://ops@build-3/system'}))).toBe('build-3')
    expect(machineHost(record({uri: 'qemu+ssh://root@10.251.7.2:2222/system?keyfile=/k'}))).toBe('10.251.7.2')
    expect(machineHost(record({uri: 'qemu+tls://[fd00::1]/system'}))).toBe('fd00::1')
  })

  it('is unknown when the record cannot be read', () => {
    expect(machineHost(undefined)).toBeUndefined()
  })
})
