import {describe, expect, it} from 'vitest'

import {domainSpec, domainUuid} from '../../src/driver/libvirt/driver.js'
import {classifyVirshError, libvirtError} from '../../src/driver/libvirt/errors.js'
import {advertisesKvm} from '../../src/driver/libvirt/host.js'
import {freshLease, latestExpiry, parseLeases} from '../../src/driver/libvirt/leases.js'
import {natNetworkSpec, natSubnets, privateNetworkSpec} from '../../src/driver/libvirt/networks.js'
import {parseDomState, vncAddress} from '../../src/driver/libvirt/domain.js'
import {boxVolumeName, machineVolumeName} from '../../src/driver/libvirt/volumes.js'
import {renderDomainXml, renderNetworkXml, type DomainSpec} from '../../src/driver/libvirt/xml.js'
import type {MachineRecord} from '../../src/machine/record.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'

const HOSTILE = `x'"/><devices><emulator>/bin/sh</emulator></devices><a b='&amp;`

const base: DomainSpec = {
  type: 'qemu',
  name: 'vm-web-0123456789abcdef',
  uuid: domainUuid('0123456789abcdef'),
  title: 'vm machine web (/work/app)',
  memoryMiB: 512,
  cpus: 1,
  disks: [{path: '/var/lib/libvirt/images/vm-0123456789abcdef-disk0.qcow2', format: 'qcow2', target: 'vda'}],
  nics: [{mac: '52:54:00:12:34:56', network: 'vmfile'}],
  shares: [],
  serialLog: '/work/app/.vm/machines/web/serial.log',
  vnc: false,
}

/** The element names of an XML text, in order (a value that broke out of its attribute would add some). */
function elements(xml: string): string[] {
  return [...xml.matchAll(/<([a-z][a-z_]*)[\s/>]/g)].map((match) => match[1]!)
}

describe('domain XML', () => {
  it('virtio disk and NIC, a serial pty with its log, no <graphics> without VNC, SeaBIOS boot from disk without a kernel', async () => {
    const xml = await renderDomainXml(base)
    expect(xml).toContain("<domain type='qemu'>")
    expect(xml).toContain(`<uuid>${base.uuid}</uuid>`)
    expect(xml).toMatch(/<target dev='vda' bus='virtio'\/>/)
    expect(xml).toMatch(
      /<interface type='network'>\s*<source network='vmfile'\/>\s*<mac address='52:54:00:12:34:56'\/>\s*<model type='virtio'\/>/,
    )
    expect(xml).toMatch(/<serial type='pty'>\s*<log file='\/work\/app\/.vm\/machines\/web\/serial.log' append='off'\/>/)
    expect(xml).not.toContain('<graphics')
    expect(xml).toContain("<boot dev='hd'/>")
    expect(xml).not.toContain('<kernel>')
    expect(xml).not.toContain('<filesystem')
  })

  it('kvm type, direct kernel boot with qboot, VNC on 127.0.0.1, 9p shares with their tags, a bridge NIC', async () => {
    const xml = await renderDomainXml({
      ...base,
      type: 'kvm',
      loader: '/usr/share/qemu/qboot.rom',
      kernel: {path: '/boxes/tiny/vmlinux', initrd: '/boxes/tiny/initrd.img', cmdline: 'root=/dev/vda rw console=ttyS0'},
      nics: [...base.nics, {mac: '52:54:00:12:34:57', bridge: 'br0'}],
      shares: [{tag: 'vm0', path: '/work/app', readOnly: true}],
      vnc: true,
    })
    expect(xml).toContain("<domain type='kvm'>")
    expect(xml).toContain("<loader type='rom' readonly='yes'>/usr/share/qemu/qboot.rom</loader>")
    expect(xml).toContain('<kernel>/boxes/tiny/vmlinux</kernel>')
    expect(xml).toContain('<initrd>/boxes/tiny/initrd.img</initrd>')
    // handlebars escapes = as a character reference, which XML reads back as =
    expect(xml).toContain('<cmdline>root&#x3D;/dev/vda rw console&#x3D;ttyS0</cmdline>')
    expect(xml).toMatch(/<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>/)
    expect(xml).toMatch(/<interface type='bridge'>\s*<source bridge='br0'\/>/)
    expect(xml).toMatch(
      /<filesystem type='mount' accessmode='passthrough'>\s*<source dir='\/work\/app'\/>\s*<target dir='vm0'\/>\s*<readonly\/>/,
    )
  })

  it('hostile values stay text: no element or attribute is added by a path, title, cmdline or network name', async () => {
    const plain = elements(await renderDomainXml({...base, kernel: {path: '/k', cmdline: 'quiet'}}))
    const xml = await renderDomainXml({
      ...base,
      title: HOSTILE,
      kernel: {path: `/k${HOSTILE}`, cmdline: HOSTILE},
      disks: [{path: `/d${HOSTILE}`, format: 'qcow2', target: 'vda'}],
      nics: [{mac: '52:54:00:12:34:56', network: HOSTILE}],
      serialLog: `/l${HOSTILE}`,
    })
    expect(elements(xml)).toEqual(plain)
    expect(xml).not.toContain('<emulator>')
    expect(xml).toContain('&lt;emulator&gt;')
    expect(xml).toContain('&#x27;')
  })

  it('a control character, which XML cannot carry, is refused', async () => {
    await expect(renderDomainXml({...base, title: 'a\u0001b'})).rejects.toThrow(/control character/)
  })

  it('the spec of a machine: qboot only for a kernel box that asks for it; shares only on a local URI', () => {
    const config = resolveVmfileText('box: vmfile/tiny\nprovider: libvirt\n', '/work/app/Vmfile').machines[0]!
    const record = {
      id: '0123456789abcdef',
      name: 'default',
      projectDir: '/work/app',
      config,
      box: {firmware: 'qboot', cmdline: 'quiet', disks: []},
    } as unknown as MachineRecord
    const placement = {
      uri: 'qemu:///system',
      pool: 'default',
      network: 'vmfile',
      domain: 'vm-default-0123456789abcdef',
      volumes: [],
      kernel: '/k',
    }
    const local = domainSpec(record, placement, [], [], 'qemu', '/log', undefined, '/qboot.rom')
    expect(local).toMatchObject({loader: '/qboot.rom', kernel: {path: '/k', cmdline: 'quiet'}, shares: [{tag: 'vm0', path: '/work/app'}]})
    const remote = domainSpec(record, {...placement, uri: 'qemu+ssh://root@h/system'}, [], [], 'qemu', undefined, undefined, '/qboot.rom')
    expect(remote.shares).toEqual([])
    expect(domainSpec(record, {...placement, kernel: undefined}, [], [], 'qemu', '/log', undefined, '/q').loader).toBeUndefined()
    expect(domainUuid('0123456789abcdef')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })
})

describe('network XML', () => {
  it('NAT with DHCP; isolated without <forward> or address', async () => {
    const nat = await renderNetworkXml(natNetworkSpec('vmfile', 150))
    expect(nat).toMatch(/<forward mode='nat'\/>/)
    expect(nat).toMatch(
      /<ip address='192.168.150.1' netmask='255.255.255.0'>\s*<dhcp>\s*<range start='192.168.150.10' end='192.168.150.254'\/>/,
    )
    const isolated = await renderNetworkXml(privateNetworkSpec('backend', '/work/app'))
    expect(isolated).toContain('<name>vmfile-private-backend</name>')
    expect(isolated).not.toContain('<forward')
    expect(isolated).not.toContain('<ip')
  })

  it('private networks: shared by name across projects, the project one per project; bridge names fit 15 bytes', () => {
    expect(privateNetworkSpec('lan', '/a').name).toBe(privateNetworkSpec('lan', '/b').name)
    expect(privateNetworkSpec(undefined, '/a').name).not.toBe(privateNetworkSpec(undefined, '/b').name)
    expect(privateNetworkSpec(HOSTILE, '/a').name).toMatch(/^vmfile-private-[0-9a-f]{8}$/)
    for (const spec of [privateNetworkSpec('a-very-long-network-name', '/a'), natNetworkSpec('a-very-long-nat-name', 100)])
      expect(spec.bridge.length).toBeLessThanOrEqual(15)
  })

  it('NAT subnets tried: distinct, in 192.168.100-199', () => {
    const subnets = natSubnets('vmfile')
    expect(new Set(subnets).size).toBe(subnets.length)
    for (const octet of subnets) expect(octet >= 100 && octet <= 199).toBe(true)
  })
})

describe('what virsh says', () => {
  // Recorded from virsh 9.0 (libvirt-clients, Debian 12) against libvirtd 9.0.
  const said = {
    unreachableSocket:
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/tmp/nonexist/sock': No such file or directory\n",
    unreachableSsh:
      'error: failed to connect to the hypervisor\nerror: Cannot recv data: ssh: connect to host 127.0.0.9 port 22: Connection refused: Connection reset by peer\n',
    permission:
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': Permission denied\n",
    poolMissing: "error: failed to get pool 'nopool'\nerror: Storage pool not found: no storage pool with matching name 'nopool'\n",
    networkInUse: 'error: Failed to start network vmfile2\nerror: internal error: Network is already in use by interface vmfile0\n',
    networkMissing: "error: failed to get network 'nonet'\nerror: Network not found: no network with matching name 'nonet'\n",
    domainMissing: "error: failed to get domain 'nosuch'\n",
    volumeMissing: "error: failed to get vol 'nosuch'\nerror: Storage volume not found: no storage vol with matching path 'nosuch'\n",
    volumeExists: "error: Failed to create vol vmbox-test.qcow2\nerror: storage volume 'vmbox-test.qcow2' exists already\n",
  }

  it('classifies each failure', () => {
    expect(classifyVirshError(said.unreachableSocket)).toBe('unreachable')
    expect(classifyVirshError(said.unreachableSsh)).toBe('unreachable')
    expect(classifyVirshError(said.permission)).toBe('permission-denied')
    expect(classifyVirshError(said.poolMissing)).toBe('pool-missing')
    expect(classifyVirshError(said.networkInUse)).toBe('network-failed')
    expect(classifyVirshError(said.networkMissing)).toBe('network-failed')
    expect(classifyVirshError(said.domainMissing)).toBe('domain-missing')
    expect(classifyVirshError(said.volumeMissing)).toBe('volume-missing')
    expect(classifyVirshError(said.volumeExists)).toBe('volume-exists')
    expect(classifyVirshError('error: something else entirely\n')).toBe('other')
  })

  it('errors name the host and carry what libvirt said, with what to do', () => {
    const unreachable = libvirtError('build-3', 'qemu+ssh://ops@build-3/system', 'start domain x', [], said.unreachableSsh)
    expect(unreachable.message).toBe(
      'Cannot reach libvirt host build-3 (qemu+ssh://ops@build-3/system) to start domain x: Cannot recv data: ssh: connect to host 127.0.0.9 port 22: Connection refused: Connection reset by peer',
    )
    expect(unreachable.code).toBe('LIBVIRT_UNREACHABLE')
    const denied = libvirtError('this host', 'qemu:///system', 'use storage pool default', [], said.permission)
    expect(denied.message).toMatch(
      /^Permission denied by the libvirt daemon on this host \(qemu:\/\/\/system\) to use storage pool default: Failed to connect socket .*Permission denied$/,
    )
    expect(denied.hint).toMatch(/unix_sock_group/)
    const pool = libvirtError('build-3', 'qemu+ssh://ops@build-3/system', 'use storage pool nopool', [], said.poolMissing, 'nopool')
    expect(pool.message).toMatch(/^Storage pool "nopool" does not exist on libvirt host build-3/)
    expect(pool.hint).toContain('pool-define-as nopool dir')
    const network = libvirtError('build-3', 'qemu+ssh://ops@build-3/system', 'start network vmfile2', [], said.networkInUse)
    expect(network.message).toMatch(/could not be started on libvirt host build-3 .*Network is already in use by interface vmfile0$/)
    const other = libvirtError('build-3', 'qemu+ssh://ops@build-3/system', 'define domain x', ['define'], 'error: XML error: bad\n')
    expect(other.kind).toBe('external')
    expect(other.message).toBe('libvirt failed to define domain x on build-3: XML error: bad')
  })
})

describe('leases, states, names', () => {
  // virsh -q net-dhcp-leases vmfile --mac 52:54:00:aa:bb:01 (libvirt 9.0)
  const leases = parseLeases(
    ' 2026-12-01 02:57:05   52:54:00:aa:bb:01   ipv4       192.168.150.43/24   tiny       01:52:54:00:aa:bb:01\n' +
      ' 2026-12-01 03:10:00   52:54:00:aa:bb:01   ipv4       192.168.150.44/24   tiny       01:52:54:00:aa:bb:01\n' +
      ' 2026-12-01 03:20:00   52:54:00:aa:bb:02   ipv4       192.168.150.45/24   other      -\n',
  )

  it('reads leases and picks the MAC’s newest, preferring one taken after the start', () => {
    expect(leases).toHaveLength(3)
    expect(latestExpiry(leases, '52:54:00:AA:BB:01')).toBe('2026-12-01 03:10:00')
    expect(freshLease(leases, '52:54:00:aa:bb:01', '2026-12-01 02:57:05')?.address).toBe('192.168.150.44')
    expect(freshLease(leases, '52:54:00:aa:bb:01', undefined)?.address).toBe('192.168.150.44')
    expect(freshLease(leases, '52:54:00:aa:bb:03', undefined)).toBeUndefined()
  })

  it('domstate --reason and vncdisplay', () => {
    expect(parseDomState('running (booted)\n')).toEqual({state: 'running', reason: 'booted'})
    expect(parseDomState('shut off (crashed)\n')).toEqual({state: 'shut off', reason: 'crashed'})
    expect(parseDomState('shut off (shutdown)')).toEqual({state: 'shut off', reason: 'shutdown'})
    expect(vncAddress('127.0.0.1:0\n')).toBe('127.0.0.1:5900')
    expect(vncAddress(':3')).toBe('127.0.0.1:5903')
    expect(vncAddress('')).toBeUndefined()
  })

  it('box volumes are named by content digest and role; machine volumes by machine id', () => {
    const digest = 'ab'.repeat(32)
    expect(boxVolumeName(digest, 'disk', 'qcow2')).toBe(`vmbox-${'ab'.repeat(16)}.qcow2`)
    expect(boxVolumeName(digest, 'kernel', 'raw')).toBe(`vmbox-${'ab'.repeat(16)}.kernel`)
    expect(machineVolumeName('0123456789abcdef', 1)).toBe('vm-0123456789abcdef-disk1.qcow2')
  })

  it('capabilities: KVM advertised or not', () => {
    expect(advertisesKvm("<guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>")).toBe(true)
    expect(advertisesKvm("<guest><arch name='x86_64'><domain type='qemu'/></arch></guest>")).toBe(false)
  })
})
