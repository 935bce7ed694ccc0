import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {parseCatalog} from '../../src/box/catalog.js'
import {isValidBoxFile, isValidBoxName, isValidSshUser, quoteValue} from '../../src/box/fields.js'
import {parseBoxMetadata} from '../../src/box/metadata.js'
import {boxDir, escapeBoxName, listBoxes, readStoredBox, unescapeBoxName} from '../../src/box/store.js'
import {VmError} from '../../src/errors/errors.js'

function problemsOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(VmError)
    return [(error as VmError).message, ...(error as VmError).details].join('\n')
  }
  throw new Error('expected an error')
}

const base = {provider: 'libvirt', format: 'qcow2'}

describe('every field read from a box is checked against a strict pattern', () => {
  it('refuses an ssh_user that would inject ssh_config lines, naming the field and escaping the value', () => {
    const text = problemsOf(() => parseBoxMetadata(JSON.stringify({...base, ssh_user: 'vm\nProxyCommand touch /tmp/owned'}), 'test'))
    expect(text).toContain('"ssh_user" is "vm\\nProxyCommand touch /tmp/owned"; it must be a user name')
    expect(text).not.toContain('\n  ProxyCommand')
    for (const bad of ['vm user', '-oProxyCommand=x', 'vm"', 'a'.repeat(33), '', 'root\u0000']) {
      if (bad === '') continue
      expect(isValidSshUser(bad), bad).toBe(false)
    }
    expect(parseBoxMetadata(JSON.stringify({...base, ssh_user: 'vagrant'}), 'test').sshUser).toBe('vagrant')
  })

  it('checks file names, cmdline, firmware, architecture, name, version and disk names', () => {
    const text = problemsOf(() =>
      parseBoxMetadata(
        JSON.stringify({
          ...base,
          kernel: 'vmlinuz\u001b[2J',
          initrd: '.hidden/initrd',
          cmdline: 'console=ttyS0\ninit=/bin/sh',
          firmware: '/usr/share/ovmf.fd',
          architecture: '../amd64',
          name: 'org/box\u009b31m',
          version: '1.0; rm -rf /',
          virtual_size: 1e300,
          disks: [{path: 'box,file.driver=ssh.img', name: 'data disk'}],
        }),
        'test',
      ),
    )
    for (const expected of [
      '"kernel" is "vmlinuz\\u001b[2J"',
      '"initrd" is ".hidden/initrd"',
      '"cmdline" is "console=ttyS0\\ninit=/bin/sh"',
      '"firmware" is "/usr/share/ovmf.fd"; it must be one of qboot',
      '"architecture" is "../amd64"',
      '"name" is "org/box\\u009b31m"',
      '"version" is "1.0; rm -rf /"',
      '"virtual_size" is 1e+300',
      '"disks[0].path" is "box,file.driver=ssh.img"',
      '"disks[0].name" is "data disk"',
    ])
      expect(text).toContain(expected)
    expect(text.includes('\u001b') || text.includes('\u009b')).toBe(false)
  })

  it('accepts the fields of real boxes', () => {
    const metadata = parseBoxMetadata(
      JSON.stringify({
        ...base,
        virtual_size: 2,
        architecture: 'amd64',
        name: 'vmfile/tiny',
        version: '1.0.0',
        kernel: 'vmlinux',
        initrd: 'initrd.img',
        cmdline: 'root=UUID=4f1b7c6e-7a1d-4c55-9e0a-76d1f1a7e001 rw console=ttyS0,115200 quiet cryptomgr.notests',
        firmware: 'qboot',
        ssh_user: 'vm',
        disks: [{path: 'box_1.img'}, {path: 'disks/data-2.qcow2', name: 'data'}],
      }),
      'test',
    )
    expect(metadata.cmdline).toContain('console=ttyS0,115200')
    for (const ok of ['box.img', 'disks/box_1.img', 'vmlinuz-6.1.0+1']) expect(isValidBoxFile(ok), ok).toBe(true)
    for (const bad of ['./box.img', '../x', '/etc/passwd', 'a//b', 'a b', '-x', 'a\\b']) expect(isValidBoxFile(bad), bad).toBe(false)
  })

  it('escapes control, C1 and bidirectional characters in quoted values', () => {
    expect(quoteValue('a\u001b]0;x\u0007\u202e\u009bb"\\')).toBe('"a\\u001b]0;x\\u0007\\u202e\\u009bb\\"\\\\"')
  })

  it('checks every catalog field vm uses and reports them all', () => {
    const text = problemsOf(() =>
      parseCatalog(
        JSON.stringify({
          name: 'org/box\nX',
          versions: [
            {version: '1.0.0\u001b', providers: []},
            {
              version: '2.0.0',
              providers: [
                {name: 'libvirt/../x', url: 'a.box'},
                {name: 'libvirt', url: 'file:///etc/shadow'},
                {name: 'qemu', url: 'b.box', architecture: 'amd 64', checksum_type: 'crc32', checksum: 'ab'},
                {name: 'qemu', url: 'c.box', checksum_type: 'sha256', checksum: 'xyz'},
              ],
            },
          ],
        }),
        'https://boxes.example.com/org/box.json',
      ),
    )
    for (const expected of [
      '"name" is "org/box\\nX"',
      '"versions[0].version" is "1.0.0\\u001b"',
      '"versions[1].providers[0].name" is "libvirt/../x"',
      '"versions[1].providers[1].url" is "file:///etc/shadow"; it must be an http(s) URL',
      '"versions[1].providers[2].architecture" is "amd 64"',
      '"versions[1].providers[2].checksum_type" is "crc32"',
      '"versions[1].providers[3].checksum" is "xyz"',
    ])
      expect(text).toContain(expected)
    const local = parseCatalog(
      JSON.stringify({name: 'org/box', versions: [{version: '1.0', providers: [{name: 'qemu', url: 'file:///srv/box.box'}]}]}),
      'file:///srv/box.json',
    )
    expect(local.versions[0]!.providers[0]!.url).toBe('file:///srv/box.box')
  })
})

describe('the store directory of a box name is injective', () => {
  it('refuses names that could collide with the slash escape', () => {
    for (const bad of ['org-VAGRANTSLASH-box', 'org/box-VAGRANTSLASH-x', 'x-VAGRANTSLASH/y', 'x/VAGRANTSLASH-y', 'VAGRANTSLASH'])
      expect(isValidBoxName(bad), bad).toBe(false)
    expect(() => escapeBoxName('org-VAGRANTSLASH-box')).toThrow(/not a usable box name/)
    expect(unescapeBoxName('org-VAGRANTSLASH-box')).toBe('org/box')
    expect(unescapeBoxName('a-VAGRANTSLASH-b-VAGRANTSLASH-c')).toBeUndefined()
  })

  it('never reads org/box under the name org-VAGRANTSLASH-box, and lists existing stores unchanged', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'vm-store-alias-'))
    const key = {name: 'org/box', version: '1.0.0', architecture: 'amd64', provider: 'libvirt'}
    const dir = boxDir(key, root)
    mkdirSync(dir, {recursive: true})
    writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(base))
    expect((await readStoredBox(key, root))?.name).toBe('org/box')
    expect(await readStoredBox({...key, name: 'org-VAGRANTSLASH-box'}, root)).toBeUndefined()
    expect((await listBoxes(root)).map((box) => box.name)).toEqual(['org/box'])
  })
})
