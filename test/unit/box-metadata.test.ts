import {describe, expect, it} from 'vitest'

import {detectCompression, detectContent} from '../../src/box/archive.js'
import {isSafeRelativePath, parseBoxMetadata} from '../../src/box/metadata.js'
import {parseDiskFacts} from '../../src/box/verify.js'

describe('box metadata and archive checks', () => {
  it('accepts only relative paths that stay inside the box', () => {
    for (const ok of ['box.img', 'disks/data.qcow2', './box.img']) expect(isSafeRelativePath(ok), ok).toBe(true)
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../x', 'a/..', '.', 'a\\b', 'x\0y'])
      expect(isSafeRelativePath(bad), bad).toBe(false)
  })

  it('reads Vagrant libvirt metadata and defaults the disk to box.img', () => {
    const metadata = parseBoxMetadata('{"provider": "libvirt", "format": "qcow2", "virtual_size": 20}', 'test')
    expect(metadata.disks).toEqual([{path: 'box.img', name: undefined, format: 'qcow2'}])
    expect(metadata.virtualSize).toBe(20)
    expect(metadata.kernel).toBeUndefined()
  })

  it('reads multi-disk boxes and our optional fields', () => {
    const metadata = parseBoxMetadata(
      JSON.stringify({
        provider: 'qemu',
        format: 'qcow2',
        disks: [{path: 'a.qcow2'}, {path: 'b.img', name: 'data', format: 'raw'}],
        kernel: 'vmlinuz',
        ssh_user: 'vm',
      }),
      'test',
    )
    expect(metadata.disks.map((disk) => [disk.path, disk.format])).toEqual([
      ['a.qcow2', 'qcow2'],
      ['b.img', 'raw'],
    ])
    expect(metadata.sshUser).toBe('vm')
  })

  it('reports every problem at once', () => {
    let details: string[] = []
    try {
      parseBoxMetadata(
        JSON.stringify({provider: 'virtualbox', format: 'vmdk', kernel: '../vmlinuz', disks: [{path: '/etc/passwd'}]}),
        'test',
      )
    } catch (error) {
      details = (error as {details: string[]}).details
    }
    expect(details).toHaveLength(4)
    expect(details.join('\n')).toContain('"provider" is "virtualbox"')
    expect(details.join('\n')).toContain('"kernel" is "../vmlinuz"; it must be a relative path inside the box')
  })

  it('detects compression and content by magic bytes', () => {
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]))).toBe('gzip')
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]))).toBe('zstd')
    expect(detectCompression(Buffer.from('ustar\0\0\0'))).toBe('none')
    const tar = Buffer.alloc(512)
    tar.write('ustar', 257, 'latin1')
    expect(detectContent(tar)).toBe('tar')
    expect(detectContent(Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]))).toBe('image')
    expect(detectContent(Buffer.from('  {"name": "org/box"}'))).toBe('catalog')
  })

  it('finds host files referenced by a disk in qemu-img info output', () => {
    // qemu-img create -f qcow2 -F raw -b /etc/passwd backed.qcow2 16M; qemu-img info --output=json backed.qcow2
    const backed = `{"virtual-size": 16777216, "filename": "backed.qcow2", "cluster-size": 65536, "format": "qcow2", "actual-size": 200704,
      "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "compression-type": "zlib", "lazy-refcounts": false, "refcount-bits": 16, "corrupt": false, "extended-l2": false}},
      "full-backing-filename": "/etc/passwd", "backing-filename": "/etc/passwd", "backing-filename-format": "raw", "dirty-flag": false}`
    expect(parseDiskFacts(backed)).toEqual({format: 'qcow2', virtualSize: 16777216, externalFile: '/etc/passwd'})
    const external = '{"virtual-size": 1, "format": "qcow2", "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}}'
    expect(parseDiskFacts(external).externalFile).toBe('/dev/sda')
    expect(parseDiskFacts('{"virtual-size": 1048576, "format": "raw"}').externalFile).toBeUndefined()
  })
})
