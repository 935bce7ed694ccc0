import {describe, expect, it} from 'vitest'

import type {CreatedMachine, DriverMachine} from '../../src/driver/driver.js'
import {
  hasManagedSave,
  holdsMemory,
  libvirtSnapshots,
  libvirtSuspension,
  startArgs,
  memoryBytes,
  parseBlockCapacities,
  parseBlockList,
  parseSnapshotList,
  type DomainAccess,
} from '../../src/driver/libvirt/snapshot.js'

// Recorded from virsh 9.0.0 against libvirtd 9.0.0 / QEMU 7.2 (tiny box, TCG), LANG=C.

// virsh snapshot-list lvsnap-m1   (c1 taken running, c2 shut off; "with space" made by hand)
const SNAPSHOT_LIST = `
 Name         Creation Time               State
---------------------------------------------------
 c1           2026-12-01 01:58:56 +0000   running
 c2           2026-12-01 01:59:04 +0000   shutoff
 with space   2026-12-01 03:59:04 +0200   disk-snapshot

`

// virsh dominfo lvsnap-m1   (after virsh managedsave lvsnap-m1)
const DOMINFO_SAVED = `Id:             -
Name:           lvsnap-m1
UUID:           32c1f209-2c47-4fa3-9805-a09f9dd4663a
OS Type:        hvm
State:          shut off
CPU(s):         1
Max memory:     524288 KiB
Used memory:    524288 KiB
Persistent:     yes
Autostart:      disable
Managed save:   yes
Security model: none
Security DOI:   0
`
const DOMINFO_RUNNING = DOMINFO_SAVED.replace('State:          shut off', 'State:          running').replace(
  'Managed save:   yes',
  'Managed save:   no',
)

// virsh domblklist lvsnap-m1 --details
const BLOCK_LIST = `
 Type   Device   Target   Source
------------------------------------------------
 file   disk     vda      /tmp/lvsnap/m1.qcow2
 file   cdrom    sda      /tmp/lvsnap/seed.img
 file   disk     vdb      /tmp/lvsnap/m1 second.qcow2

`

// virsh domblkinfo lvsnap-m1 --all   (vdb added for this test)
const BLOCK_INFO = `
 Target   Capacity     Allocation   Physical
----------------------------------------------
 vda      2147483648   54153216     54395019
 sda      1048576      0            1048576
 vdb      1073741824   196608       196608

`

describe('libvirt snapshot output parsing', () => {
  it('reads snapshot-list rows: names (with spaces), times with their offset as UTC, the state', () => {
    expect(parseSnapshotList(SNAPSHOT_LIST)).toEqual([
      {name: 'c1', createdAt: '2026-12-01T01:58:56.000Z', state: 'running'},
      {name: 'c2', createdAt: '2026-12-01T01:59:04.000Z', state: 'shutoff'},
      {name: 'with space', createdAt: '2026-12-01T01:59:04.000Z', state: 'disk-snapshot'},
    ])
    expect(parseSnapshotList(' Name   Creation Time   State\n----------\n\n')).toEqual([])
  })

  it('a snapshot holds memory only when the domain ran (or was paused) when it was taken', () => {
    expect(['running', 'paused'].map(holdsMemory)).toEqual([true, true])
    expect(['shutoff', 'disk-snapshot', 'crashed'].map(holdsMemory)).toEqual([false, false, false])
  })

  it('reads the managed save and the memory size from dominfo', () => {
    expect(hasManagedSave(DOMINFO_SAVED)).toBe(true)
    expect(hasManagedSave(DOMINFO_RUNNING)).toBe(false)
    expect(memoryBytes(DOMINFO_SAVED)).toBe(512 * 1024 ** 2)
  })

  it('reads block devices (sources with spaces) and their capacities', () => {
    expect(parseBlockList(BLOCK_LIST).map((device) => [device.device, device.target, device.source])).toEqual([
      ['disk', 'vda', '/tmp/lvsnap/m1.qcow2'],
      ['cdrom', 'sda', '/tmp/lvsnap/seed.img'],
      ['disk', 'vdb', '/tmp/lvsnap/m1 second.qcow2'],
    ])
    expect([...parseBlockCapacities(BLOCK_INFO)]).toEqual([
      ['vda', 2147483648],
      ['sda', 1048576],
      ['vdb', 1073741824],
    ])
  })
})

/** A host that answers virsh with the recorded outputs above and notes what it was asked. */
function recordedHost(local = false): DomainAccess & {calls: string[][]} {
  const calls: string[][] = []
  const answers: Record<string, string> = {
    'snapshot-list': SNAPSHOT_LIST,
    dominfo: DOMINFO_RUNNING,
    domblklist: BLOCK_LIST,
    domblkinfo: BLOCK_INFO,
  }
  const access = async (machine: DriverMachine) => ({
    domain: `vm-${machine.name}`,
    local,
    async virsh(args: readonly string[]) {
      calls.push([...args])
      return answers[args[0]!] ?? ''
    },
  })
  return Object.assign(access, {calls})
}

const machine = {name: 'web', dir: '/nonexistent', id: 'abc', record: {}} as unknown as CreatedMachine

describe('libvirt snapshot operations', () => {
  it('lists memory snapshots with a size (the guest memory on a remote host) and disk ones with none', async () => {
    const host = recordedHost()
    expect(await libvirtSnapshots(host).list(machine)).toEqual([
      {name: 'c1', memoryBytes: 512 * 1024 ** 2, createdAt: '2026-12-01T01:58:56.000Z'},
      {name: 'c2', memoryBytes: 0, createdAt: '2026-12-01T01:59:04.000Z'},
      {name: 'with space', memoryBytes: 0, createdAt: '2026-12-01T01:59:04.000Z'},
    ])
  })

  it('gives the sizes of the machine disks only, in order (not the seed CD-ROM)', async () => {
    expect(await libvirtSnapshots(recordedHost()).diskSizes(machine)).toEqual([2147483648, 1073741824])
  })

  it('takes internal snapshots atomically, reverts a running machine to running, deletes by name', async () => {
    const host = recordedHost()
    const ops = libvirtSnapshots(host)
    await ops.save(machine, 's1', true)
    await ops.restore(machine, 's1', true)
    await ops.restore(machine, 'd1', false)
    await ops.delete(machine, 's1', true)
    expect(host.calls).toEqual([
      ['snapshot-create-as', 'vm-web', '--name', 's1', '--atomic'],
      ['snapshot-revert', 'vm-web', '--snapshotname', 's1', '--running'],
      ['snapshot-revert', 'vm-web', '--snapshotname', 'd1'],
      ['snapshot-delete', 'vm-web', '--snapshotname', 's1'],
    ])
    // Never external (--disk-only): those leave overlay files libvirt 9.0 cannot revert to.
    expect(host.calls.flat()).not.toContain('--disk-only')
  })

  it('suspends with a managed save, then gives back what the engine holds; discards with managedsave-remove', async () => {
    const host = recordedHost()
    const released: string[] = []
    const suspension = libvirtSuspension(host, async (stopped) => {
      released.push(stopped.name)
      return {method: 'already-stopped', record: undefined}
    })
    expect(await suspension.suspend(machine)).toEqual({method: 'quit', record: undefined})
    await suspension.discard(machine)
    expect(host.calls).toEqual([
      ['managedsave', 'vm-web'],
      ['managedsave-remove', 'vm-web'],
    ])
    expect(released).toEqual(['web'])
  })

  it('starts from a managed save with a plain start and from a memory snapshot with a revert that leaves it running', () => {
    expect(startArgs('vm-web', undefined)).toEqual(['start', 'vm-web'])
    expect(startArgs('vm-web', {kind: 'saved'})).toEqual(['start', 'vm-web'])
    expect(startArgs('vm-web', {kind: 'snapshot', name: 's1'})).toEqual(['snapshot-revert', 'vm-web', '--snapshotname', 's1', '--running'])
  })
})
