import {describe, expect, it} from 'vitest'

import {buildQemuArgs, escapeOption} from '../../src/driver/qemu/args.js'
import {qemuPaths} from '../../src/driver/qemu/files.js'
import {qemuConsoleSocket} from '../../src/driver/qemu/machine-process.js'
import type {HostFacts, MachineSpec, NicSpec} from '../../src/driver/qemu/spec.js'
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
        '-drive file=/p/.vm/machines/web/disk0.qcow2,format=qcow2,if=virtio,index=0,cache=writeback,discard=unmap,node-name=disk0',
        '-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2200-:22 -device virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,romfile=',
        '-device virtio-rng-pci',
      ].join(' '),
    )
  })

  it('continues from a saved state (-incoming) or a snapshot (-loadvm) with the very same devices', () => {
    const cold = buildQemuArgs(base, {qemuBinary: 'qemu-system-x86_64'})
    const incoming = buildQemuArgs({...base, incoming: "exec:zstd -q -dc '/p/a b/saved-state'"}, {qemuBinary: 'qemu-system-x86_64'})
    expect(incoming).toEqual([...cold, '-incoming', "exec:zstd -q -dc '/p/a b/saved-state'"])
    // The file QEMU reads on fd 3 is passed to it, not named on its command line.
    const fromFd = buildQemuArgs({...base, incoming: 'fd:3', incomingFile: '/p/a b/saved-state'}, {qemuBinary: 'qemu-system-x86_64'})
    expect(fromFd).toEqual([...cold, '-incoming', 'fd:3'])
    expect(buildQemuArgs({...base, loadvm: 'before'}, {qemuBinary: 'qemu-system-x86_64'})).toEqual([...cold, '-loadvm', 'before'])
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

/**
 * The argv as one option per line (an option and its value together), for file snapshots a
 * reader can check against QEMU's manual. Values with spaces or quotes, or empty ones, are
 * JSON-quoted so that nothing is lost.
 */
const NO_VALUE = new Set(['-nodefaults', '-no-user-config', '-daemonize'])
function render(args: string[]): string {
  const lines: string[] = []
  for (let i = 0; i < args.length; i++) {
    const option = args[i]!
    if (!option.startsWith('-')) throw new Error(`argument ${i} (${JSON.stringify(option)}) is not an option`)
    if (NO_VALUE.has(option)) {
      lines.push(option)
      continue
    }
    const value = args[++i]
    if (value === undefined) throw new Error(`${option} has no value`)
    lines.push(`${option} ${/^$|[\s"']/.test(value) ? JSON.stringify(value) : value}`)
  }
  return `${lines.join('\n')}\n`
}

const withQboot: HostFacts = {qemuBinary: 'qemu-system-x86_64', qbootRom: '/usr/share/qemu/qboot.rom'}
const withoutQboot: HostFacts = {qemuBinary: 'qemu-system-x86_64'}
const sshOnly = base.nics[0]!
const snapshot = (name: string) => `./__snapshots__/qemu-args/${name}.txt`

describe('buildQemuArgs, per boot mode (file snapshots)', () => {
  it('disk boot: firmware boots the first disk; every disk is a virtio drive in order', async () => {
    const spec: MachineSpec = {...base, disks: [...base.disks, {path: '/p/.vm/machines/web/disk1.img', format: 'raw'}]}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('boot-disk'))
  })

  it('direct kernel boot of a vmlinux through qboot: the pc machine with -bios qboot.rom', async () => {
    const spec: MachineSpec = {
      ...base,
      kernel: {kernel: '/box/vmlinux', initrd: '/box/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda rw quiet', firmware: 'qboot'},
    }
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('boot-kernel-qboot'))
  })

  it('a box asking for qboot on a host without qboot.rom: q35 and the default firmware', async () => {
    const spec: MachineSpec = {
      ...base,
      kernel: {kernel: '/box/vmlinux', initrd: '/box/initrd.img', cmdline: 'root=/dev/vda', firmware: 'qboot'},
    }
    await expect(render(buildQemuArgs(spec, withoutQboot))).toMatchFileSnapshot(snapshot('boot-kernel-qboot-missing'))
  })

  it('kernel boot without qboot: q35, the kernel with its initrd and command line', async () => {
    const spec: MachineSpec = {...base, kernel: {kernel: '/box/vmlinuz', initrd: '/box/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda'}}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('boot-kernel-initrd-cmdline'))
  })

  it('kernel boot with neither initrd nor command line: no -initrd, no -append', async () => {
    const spec: MachineSpec = {...base, kernel: {kernel: '/box/vmlinuz'}}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('boot-kernel-only'))
  })
})

describe('buildQemuArgs, per NIC kind (file snapshots)', () => {
  it('user networking with SSH and other forwards, TCP and UDP, on any host address', async () => {
    const user: NicSpec = {
      kind: 'user',
      mac: '52:54:00:aa:bb:cc',
      forwards: [
        {protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 2200, guestPort: 22},
        {protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80},
        {protocol: 'udp', hostIp: '127.0.0.1', hostPort: 5353, guestPort: 53},
      ],
    }
    await expect(render(buildQemuArgs({...base, nics: [user]}, withQboot))).toMatchFileSnapshot(snapshot('nic-user-forwards'))
  })

  it('an isolated NAT NIC (restrict=on, hostfwd kept) and a cloud-init seed attached read-only after the disks', async () => {
    const isolated: NicSpec = {
      kind: 'user',
      mac: '52:54:00:aa:bb:cc',
      restrict: true,
      forwards: [{protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 2200, guestPort: 22}],
    }
    const args = buildQemuArgs({...base, nics: [isolated], seed: '/p/.vm/machines/web/cidata.iso'}, withQboot)
    expect(args).toContain('user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2200-:22')
    expect(args).toContain('file=/p/.vm/machines/web/cidata.iso,format=raw,if=virtio,index=1,readonly=on')
    expect(buildQemuArgs(base, withQboot).join(' ')).not.toMatch(/restrict|cidata/)
    await expect(render(args)).toMatchFileSnapshot(snapshot('nic-user-restricted-seed'))
  })

  it('user networking with no forwards at all', async () => {
    const spec: MachineSpec = {...base, nics: [{kind: 'user', mac: '52:54:00:aa:bb:cc', forwards: []}]}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('nic-user-no-forwards'))
  })

  it('bridged through a tap vm made (root): script=no, the tap named', async () => {
    const spec: MachineSpec = {...base, nics: [sshOnly, {kind: 'tap', mac: '52:54:00:00:00:02', ifname: 'web-ab120'}]}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('nic-bridged-tap'))
  })

  it("bridged through QEMU's bridge helper (unprivileged)", async () => {
    const spec: MachineSpec = {...base, nics: [sshOnly, {kind: 'bridge', mac: '52:54:00:00:00:03', bridge: 'br0'}]}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('nic-bridge-helper'))
  })

  it("a private network: a client of the network switch's Unix stream socket", async () => {
    const spec: MachineSpec = {...base, nics: [sshOnly, {kind: 'stream', mac: '52:54:00:00:00:04', socket: '/run/vmfile/net/5f3a.sock'}]}
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('nic-private-socket'))
  })
})

describe('buildQemuArgs, options (file snapshots)', () => {
  it('VNC on, display 0: a std VGA and a VNC server on 127.0.0.1 only (off is -display none -vga none)', async () => {
    const args = buildQemuArgs({...base, vncDisplay: 0}, withQboot)
    await expect(render(args)).toMatchFileSnapshot(snapshot('vnc-on'))
    expect(buildQemuArgs(base, withQboot)).toEqual(expect.arrayContaining(['-display', 'none', '-vga', 'none']))
    expect(buildQemuArgs(base, withQboot)).not.toContain('-vnc')
  })

  it('9p shares: one read-only, one read-write, each with its mount tag', async () => {
    const spec: MachineSpec = {
      ...base,
      shares: [
        {tag: 'vm0', path: '/home/u/project', readOnly: true},
        {tag: 'vm1', path: '/srv/data', readOnly: false},
      ],
    }
    await expect(render(buildQemuArgs(spec, withQboot))).toMatchFileSnapshot(snapshot('shares-9p'))
  })

  it('KVM: accel=kvm and the host CPU (TCG gets qemu64: see boot-disk)', async () => {
    await expect(render(buildQemuArgs({...base, accel: 'kvm'}, withQboot))).toMatchFileSnapshot(snapshot('accel-kvm'))
  })

  it('commas in paths: doubled inside option lists, kept as they are where QEMU takes the whole value as a path', async () => {
    const dir = '/home/u/a,b/.vm/machines/web'
    const spec: MachineSpec = {
      ...base,
      disks: [{path: `${dir}/disk0.qcow2`, format: 'qcow2'}],
      kernel: {kernel: '/boxes/x,y/vmlinux', initrd: '/boxes/x,y/initrd.img', cmdline: 'root=/dev/vda', firmware: 'qboot'},
      nics: [sshOnly, {kind: 'stream', mac: '52:54:00:00:00:04', socket: '/run/u,1/net/5f3a.sock'}],
      shares: [{tag: 'vm0', path: '/home/u/a,b', readOnly: false}],
      files: {pidfile: `${dir}/qemu.pid`, qmpSocket: '/home/u/a,b/.vm-home/run/ab12.qmp', serialLog: `${dir}/serial.log`},
    }
    const args = buildQemuArgs(spec, {qemuBinary: 'qemu-system-x86_64', qbootRom: '/opt/q,boot/qboot.rom'})
    await expect(render(args)).toMatchFileSnapshot(snapshot('commas-in-paths'))
    const after = (option: string) => args.filter((_, i) => args[i - 1] === option)
    // Parsed as key=value lists by QEMU: a single comma would end the path.
    expect(after('-qmp')).toEqual(['unix:/home/u/a,,b/.vm-home/run/ab12.qmp,server=on,wait=off'])
    expect(after('-drive')[0]).toMatch(/^file=\/home\/u\/a,,b\/\.vm\/machines\/web\/disk0\.qcow2,format=/)
    expect(after('-fsdev')[0]).toContain('path=/home/u/a,,b,security_model=none')
    expect(after('-netdev')[1]).toContain('addr.path=/run/u,,1/net/5f3a.sock')
    // Taken whole by QEMU (-serial file: keeps the rest of the value as the path): doubling would change the path.
    expect(after('-serial')).toEqual([`file:${dir}/serial.log`])
    expect(after('-pidfile')).toEqual([`${dir}/qemu.pid`])
    expect(after('-kernel')).toEqual(['/boxes/x,y/vmlinux'])
    expect(after('-initrd')).toEqual(['/boxes/x,y/initrd.img'])
    expect(after('-bios')).toEqual(['/opt/q,boot/qboot.rom'])
  })

  it('a bridge or tap name with a comma stays one value', () => {
    const spec: MachineSpec = {
      ...base,
      nics: [sshOnly, {kind: 'tap', mac: '52:54:00:00:00:02', ifname: 't,1'}, {kind: 'bridge', mac: '52:54:00:00:00:03', bridge: 'br,0'}],
    }
    const args = buildQemuArgs(spec, withQboot)
    const netdevs = args.filter((_, i) => args[i - 1] === '-netdev')
    expect(netdevs.slice(1)).toEqual(['tap,id=net1,ifname=t,,1,script=no,downscript=no', 'bridge,id=net2,br=br,,0'])
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

describe('the serial console socket (vm console)', () => {
  it('is a chardev socket that still logs everything to serial.log, read back from the command line', () => {
    const dir = '/home/u/a,b/.vm/machines/web'
    const spec: MachineSpec = {
      ...base,
      files: {...base.files, serialLog: `${dir}/serial.log`, consoleSocket: `${dir}/console.sock`},
    }
    const args = buildQemuArgs(spec, withQboot)
    const after = (option: string) => args.filter((_, i) => args[i - 1] === option)
    expect(after('-chardev')).toEqual([
      'socket,id=serial0,path=/home/u/a,,b/.vm/machines/web/console.sock,server=on,wait=off,logfile=/home/u/a,,b/.vm/machines/web/serial.log',
    ])
    expect(after('-serial')).toEqual(['chardev:serial0'])
    expect(qemuConsoleSocket(['qemu-system-x86_64', ...args])).toBe(`${dir}/console.sock`)
    expect(qemuConsoleSocket(['qemu-system-x86_64', '-serial', 'file:/x/serial.log'])).toBeUndefined()
  })

  it('sits beside serial.log, or in the runtime directory when that path is too long for a Unix socket', () => {
    const env = {VM_RUNTIME_DIR: '/run/user/1000/vmfile'}
    expect(qemuPaths('/p/.vm/machines/web', 'ab12', env).consoleSocket).toBe('/p/.vm/machines/web/console.sock')
    const deep = `/home/u/${'d'.repeat(100)}/.vm/machines/web`
    expect(qemuPaths(deep, 'ab12', env).consoleSocket).toBe('/run/user/1000/vmfile/ab12.console')
  })
})
