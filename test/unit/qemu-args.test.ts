import {describe, expect, it} from 'vitest'

import {buildQemuArgs, escapeOption} from '../../src/driver/qemu/args.js'
import type {MachineSpec} from '../../src/driver/qemu/spec.js'
import {machineMac} from '../../src/network/mac.js'

const base: MachineSpec = {
  name: 'web',
  cpus: 2,
  memoryMiB: 512,
  accel: 'tcg',
  disks: [{path: '/p/.vm/machines/web/disk0.qcow2', format: 'qcow2'}],
  nics: [{kind: 'user', mac: '52:54:00:aa:bb:cc', forwards: [{protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 2200, guestPort: 22}]}],
  shares: [],
  files: {pidfile: '/p/.vm/machines/web/qemu.pid', qmpSocket: '/tmp/vmfile-0/ab12.qmp', serialLog: '/p/.vm/machines/web/serial.log'},
}

describe('buildQemuArgs', () => {
  it('boots the disk under TCG with user networking and SSH forwarded', () => {
    expect(buildQemuArgs(base, {qemuBinary: 'qemu-system-x86_64'}).join(' ')).toBe(
      [
        '-name web,process=vm-web -machine q35,accel=tcg -cpu qemu64 -smp 2 -m 512 -nodefaults -no-user-config',
        '-display none -vga none -serial file:/p/.vm/machines/web/serial.log -pidfile /p/.vm/machines/web/qemu.pid',
        '-qmp unix:/tmp/vmfile-0/ab12.qmp,server=on,wait=off -daemonize',
        '-drive file=/p/.vm/machines/web/disk0.qcow2,format=qcow2,if=virtio,index=0,cache=writeback,discard=unmap',
        '-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2200-:22 -device virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,romfile=',
        '-device virtio-rng-pci',
      ].join(' '),
    )
  })

  it('uses -cpu host under KVM, direct kernel boot with qboot, VNC and 9p shares', () => {
    const args = buildQemuArgs(
      {
        ...base,
        accel: 'kvm',
        kernel: {kernel: '/box/vmlinux', initrd: '/box/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda quiet', firmware: 'qboot'},
        vncDisplay: 3,
        shares: [{tag: 'vm0', path: '/home/u/project,1', readOnly: true}],
      },
      {qemuBinary: 'qemu-system-x86_64', qbootRom: '/usr/share/qemu/qboot.rom'},
    )
    expect(args).toEqual(expect.arrayContaining(['-cpu', 'host', '-bios', '/usr/share/qemu/qboot.rom', '-vnc', '127.0.0.1:3']))
    expect(args.slice(args.indexOf('-kernel'), args.indexOf('-kernel') + 6)).toEqual([
      '-kernel',
      '/box/vmlinux',
      '-initrd',
      '/box/initrd.img',
      '-append',
      'console=ttyS0 root=/dev/vda quiet',
    ])
    expect(args).toContain('local,id=fs0,path=/home/u/project,,1,security_model=none,readonly=on')
    expect(args[args.indexOf('-machine') + 1]).toBe('pc,accel=kvm')
  })

  it('adds one NIC per network, each with its own MAC', () => {
    const args = buildQemuArgs(
      {
        ...base,
        nics: [
          ...base.nics,
          {kind: 'tap', mac: '52:54:00:00:00:02', ifname: 'vm-web-1'},
          {kind: 'bridge', mac: '52:54:00:00:00:03', bridge: 'br0'},
          {kind: 'stream', mac: '52:54:00:00:00:04', socket: '/run/vm/net/a,b.sock'},
        ],
      },
      {qemuBinary: 'qemu-system-x86_64'},
    )
    const netdevs = args.filter((_, i) => args[i - 1] === '-netdev')
    expect(netdevs.slice(1)).toEqual([
      'tap,id=net1,ifname=vm-web-1,script=no,downscript=no',
      'bridge,id=net2,br=br0',
      'stream,id=net3,server=off,addr.type=unix,addr.path=/run/vm/net/a,,b.sock',
    ])
  })

  it('escapes commas in option values', () => {
    expect(escapeOption('/a,b')).toBe('/a,,b')
  })
})

describe('machineMac', () => {
  it('is stable, QEMU-prefixed and differs per machine and NIC', () => {
    const a0 = machineMac('id-a', 0)
    expect(a0).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/)
    expect(machineMac('id-a', 0)).toBe(a0)
    expect(machineMac('id-a', 1)).not.toBe(a0)
    expect(machineMac('id-b', 0)).not.toBe(a0)
  })

  it('never returns a MAC another machine has', () => {
    const a0 = machineMac('id-a', 0)
    const other = machineMac('id-a', 0, new Set([a0]))
    expect(other).not.toBe(a0)
    expect(other).toMatch(/^52:54:00/)
  })
})
