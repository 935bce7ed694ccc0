import {describe, expect, it} from 'vitest'

import {resolveVmfileText} from '../../src/vmfile/index.js'
import {parseSizeMiB, formatSizeMiB} from '../../src/vmfile/units.js'

describe('defaults', () => {
  it('a Vmfile without machines defines one machine named default', () => {
    const project = resolveVmfileText('box: vmfile/tiny\n', '/work/app/Vmfile')
    expect(project.dir).toBe('/work/app')
    expect(project.primary).toBe('default')
    expect(project.machines).toEqual([
      {
        name: 'default',
        provider: 'qemu',
        libvirt: {uri: undefined, pool: 'default', network: 'vmfile'},
        box: 'vmfile/tiny',
        boxVersion: undefined,
        boxUrl: undefined,
        cpus: 2,
        memory: 1024,
        disk: undefined,
        accel: 'auto',
        bootTimeout: 300,
        hostname: undefined,
        vnc: false,
        ssh: {user: undefined, port: 22, forwardAgent: false, privateKeyPaths: undefined, insertKey: true},
        nat: {isolated: false},
        cloudInit: undefined,
        forwardedPorts: [],
        networks: [],
        syncedFolders: [{host: '/work/app', guest: '/vm', type: 'auto', readOnly: false, exclude: []}],
        provision: [],
        primary: false,
        autostart: true,
      },
    ])
  })

  it('machines inherit top-level keys, add lists outside-in and override scalars', () => {
    const text = `
box: vmfile/debian-12
memory: 2G
forwarded_ports: [{guest: 22000, host: 22000, auto_correct: true}]
provision:
  - {type: shell, inline: echo top}
machines:
  web:
    primary: true
    memory: 512
    provision:
      - {type: shell, inline: [echo, web], name: web-setup, run: always}
  db:
    box: vmfile/tiny
    autostart: false
    synced_folders: false
    ssh: {user: root}
`
    const project = resolveVmfileText(text, '/p/Vmfile')
    const [web, db] = project.machines
    expect(project.primary).toBe('web')
    expect(web?.memory).toBe(512)
    expect(web?.box).toBe('vmfile/debian-12')
    expect(web?.provision.map((p) => [p.name, p.run])).toEqual([
      ['shell-1', 'once'],
      ['web-setup', 'always'],
    ])
    expect(web?.provision[1]).toMatchObject({type: 'shell', inline: 'echo\nweb', privileged: true})
    expect(db?.memory).toBe(2048)
    expect(db?.box).toBe('vmfile/tiny')
    expect(db?.autostart).toBe(false)
    expect(db?.syncedFolders).toEqual([])
    expect(db?.ssh.user).toBe('root')
    expect(db?.forwardedPorts).toEqual([{guest: 22000, host: 22000, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: true}])
  })

  it('private networks without a name belong to the project (keyed by its directory, not its name)', () => {
    const project = resolveVmfileText('box: b\nnetworks: [{type: private, ip: 192.168.56.10/24}]\n', '/home/u/shop/Vmfile')
    expect(project.machines[0]?.networks).toEqual([{type: 'private', ip: '192.168.56.10/24', name: undefined, mac: undefined}])
  })

  it('an invalid Vmfile is one error that lists every problem', () => {
    expect(() => resolveVmfileText('box: b\ncpus: x\nvnc: 3\n', '/p/Vmfile')).toThrowError(/Vmfile has 2 problems/)
  })
})

describe('sizes', () => {
  it.each([
    [512, 512],
    ['512', 512],
    ['512M', 512],
    ['1G', 1024],
    ['1.5G', 1536],
    ['2GiB', 2048],
    ['1T', 1024 * 1024],
    ['2048k', 2],
  ])('%s is %i MiB', (input, mib) => {
    expect(parseSizeMiB(input)).toBe(mib)
  })

  it.each(['lots', '', '-1G', '0', 'G', true])('%s is not a size', (input) => {
    expect(parseSizeMiB(input)).toBeUndefined()
  })

  it('formats sizes back', () => {
    expect(formatSizeMiB(2048)).toBe('2G')
    expect(formatSizeMiB(1536)).toBe('1.5G')
    expect(formatSizeMiB(300)).toBe('300M')
  })
})
