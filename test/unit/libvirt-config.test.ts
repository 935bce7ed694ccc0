import {describe, expect, it} from 'vitest'

import {VmError} from '../../src/errors/errors.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'
import {libvirtUri, parseLibvirtUri} from '../../src/driver/libvirt/uri.js'
import {libvirtDriver} from '../../src/driver/libvirt/driver.js'
import {refuseEngineSwitch} from '../../src/machine/up.js'
import {foldersFor} from '../../src/machine/up-converge.js'
import type {MachineRecord} from '../../src/machine/record.js'

function problemsOf(text: string): string[] {
  try {
    resolveVmfileText(text, '/work/app/Vmfile')
  } catch (error) {
    return (error as VmError).details
  }
  return []
}

describe('Vmfile provider and libvirt keys', () => {
  it('provider defaults to qemu; libvirt pool and network have schema defaults, the URI none', () => {
    const [machine] = resolveVmfileText('box: vmfile/tiny\n', '/work/app/Vmfile').machines
    expect(machine!.provider).toBe('qemu')
    expect(machine!.libvirt).toEqual({uri: undefined, pool: 'default', network: 'vmfile'})
  })

  it('machines inherit provider and libvirt settings from the top level and override them key by key', () => {
    const text = `
box: vmfile/tiny
provider: libvirt
libvirt: {uri: "qemu+ssh://ops@build-3/system", pool: images}
machines:
  web: {}
  db:
    provider: qemu
    libvirt: {network: backend}
`
    const machines = resolveVmfileText(text, '/work/app/Vmfile').machines
    expect(machines.map((machine) => machine.provider)).toEqual(['libvirt', 'qemu'])
    expect(machines[0]!.libvirt).toEqual({uri: 'qemu+ssh://ops@build-3/system', pool: 'images', network: 'vmfile'})
    expect(machines[1]!.libvirt).toEqual({uri: 'qemu+ssh://ops@build-3/system', pool: 'images', network: 'backend'})
  })

  it('bad values are located problems', () => {
    const problems = problemsOf(`box: vmfile/tiny
provider: virtualbox
libvirt:
  uri: "not a uri"
  pool: "../etc"
  colour: red
`)
    expect(problems.join('\n')).toMatch(/Vmfile:2:\d+ provider: .*qemu.*libvirt/)
    expect(problems.join('\n')).toMatch(/Vmfile:4:\d+ libvirt\.uri: must be a libvirt URI/)
    expect(problems.join('\n')).toMatch(/Vmfile:5:\d+ libvirt\.pool: /)
    expect(problems.join('\n')).toMatch(/Vmfile:6:\d+ libvirt\.colour/)
  })

  it('a machine keeps its engine: --provider naming another one is refused, the same one or none is fine', () => {
    const record = {name: 'web', driver: 'qemu'} as MachineRecord
    expect(() => refuseEngineSwitch(record, 'libvirt')).toThrow(/created with the qemu engine; it cannot be started with libvirt/)
    expect(() => refuseEngineSwitch(record, 'qemu')).not.toThrow()
    expect(() => refuseEngineSwitch(record, undefined)).not.toThrow()
    expect(() => refuseEngineSwitch({name: 'old'} as MachineRecord, 'libvirt')).toThrow(/qemu engine/)
  })
})

describe('libvirt URIs', () => {
  it('the URI default: the Vmfile, else LIBVIRT_DEFAULT_URI, else qemu:///system', () => {
    expect(libvirtUri('qemu+ssh://a/system', {LIBVIRT_DEFAULT_URI: 'qemu:///session'})).toBe('qemu+ssh://a/system')
    expect(libvirtUri(undefined, {LIBVIRT_DEFAULT_URI: 'qemu:///session'})).toBe('qemu:///session')
    expect(libvirtUri(undefined, {})).toBe('qemu:///system')
  })

  it('local URIs have no jump host', () => {
    for (const uri of ['qemu:///system', 'qemu:///session', 'qemu:///system?socket=/tmp/x/libvirt-sock', 'qemu+unix:///system'])
      expect(parseLibvirtUri(uri)).toEqual({uri, local: true, label: 'this host', jump: undefined})
  })

  it('qemu+ssh URIs give the jump host with user and port; other remote transports only the host', () => {
    expect(parseLibvirtUri('qemu+ssh://ops@build-3/system').jump).toEqual({host: 'build-3', user: 'ops'})
    expect(parseLibvirtUri('qemu+ssh://root@10.0.0.5:2222/system?keyfile=/k').jump).toEqual({host: '10.0.0.5', user: 'root', port: 2222})
    expect(parseLibvirtUri('qemu+ssh://[fd00::5]:22/system').jump).toEqual({host: 'fd00::5', port: 22})
    expect(parseLibvirtUri('qemu+tcp://me@build-4:16509/system')).toMatchObject({local: false, label: 'build-4', jump: {host: 'build-4'}})
    expect(parseLibvirtUri('qemu+tcp://me@build-4:16509/system').jump).toEqual({host: 'build-4'})
    expect(parseLibvirtUri('qemu+ssh://o%40x@h/system').jump).toEqual({host: 'h', user: 'o@x'})
  })

  it('garbage is refused', () => {
    expect(() => parseLibvirtUri('build-3')).toThrow(/not a libvirt URI/)
    expect(() => parseLibvirtUri('qemu+ssh://user@:22/system')).toThrow(/no usable host/)
    expect(() => parseLibvirtUri('qemu+ssh://h:99999/system')).toThrow(/invalid port/)
  })
})

describe('libvirt engine: what it says about a machine', () => {
  const config = (uri: string | undefined, extra: object = {}) => ({
    ...resolveVmfileText('box: vmfile/tiny\nprovider: libvirt\n', '/work/app/Vmfile').machines[0]!,
    libvirt: {uri, pool: 'default', network: 'vmfile'},
    ...extra,
  })

  it('synced folders: auto is 9p on a local URI and rsync on a remote one; 9p on a remote one is refused', () => {
    const local = config('qemu:///system')
    expect(foldersFor(libvirtDriver, local.syncedFolders, local).map((folder) => folder.type)).toEqual(['auto'])
    const remote = config('qemu+ssh://root@h/system')
    expect(foldersFor(libvirtDriver, remote.syncedFolders, remote).map((folder) => folder.type)).toEqual(['rsync'])
    const ninep = remote.syncedFolders.map((folder) => ({...folder, type: '9p' as const}))
    expect(() => foldersFor(libvirtDriver, ninep, {...remote, syncedFolders: ninep})).toThrow(/asks for 9p/)
  })

  it('validate: forwarded ports are not refused; an isolated NAT NIC is', () => {
    const ports = config('qemu:///system', {
      forwardedPorts: [{guest: 80, host: 8080, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: false}],
    })
    expect(libvirtDriver.validate(ports)).toEqual([])
    expect(libvirtDriver.validate(config('qemu:///system', {nat: {isolated: true}})).map((problem) => problem.path)).toEqual([
      'machines.default.nat.isolated',
    ])
  })

  it('declares its features', () => {
    expect(libvirtDriver.features).toEqual({
      shares: ['9p', 'rsync'],
      networks: ['bridged', 'private'],
      ssh: 'guest-address',
      snapshots: true,
      suspend: true,
    })
    expect(libvirtDriver.snapshots).toBeDefined()
    expect(libvirtDriver.suspension).toBeDefined()
  })
})
