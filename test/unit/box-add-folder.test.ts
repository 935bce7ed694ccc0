import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {makeDisk, sha256} from '../helpers/box-fixtures.js'

const homes: string[] = []
afterEach(() => {
  vi.unstubAllEnvs()
  for (const home of homes.splice(0)) rmSync(home, {recursive: true, force: true})
})

function setup() {
  const home = mkdtempSync(path.join(tmpdir(), 'vm-folder-'))
  homes.push(home)
  const root = path.join(home, 'data', 'boxes')
  const env = {VM_HOME: home, VM_NO_BUILTIN_REGISTRY: '1'}
  vi.stubEnv('VM_HOME', home)
  const work = path.join(home, 'work')
  mkdirSync(work)
  /** Nothing but the finished boxes in the store: no temp folder left behind. */
  const leftovers = () => (existsSync(root) ? readdirSync(root).filter((name) => name.startsWith('.tmp-')) : [])
  return {home, root, env, work, leftovers}
}

function boxFolder(dir: string, metadata: Record<string, unknown>, disks = ['box.img']): string {
  mkdirSync(dir, {recursive: true})
  writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(metadata))
  for (const disk of disks) makeDisk(path.join(dir, disk))
  return dir
}

describe('vm box add FOLDER', () => {
  it('adds a folder holding metadata.json and box.img, like the same box as an archive', async () => {
    const {root, env, work, leftovers} = setup()
    const folder = boxFolder(path.join(work, 'mybox'), {provider: 'libvirt', format: 'qcow2', name: 'org/plain', version: '1.2.0'})
    const result = await addBox({source: 'mybox', cwd: work, env, architecture: 'amd64'})
    expect(result.alreadyPresent).toBe(false)
    expect(result.box).toMatchObject({name: 'org/plain', version: '1.2.0', architecture: 'amd64', provider: 'libvirt'})
    const stored = path.join(root, 'org-VAGRANTSLASH-plain/1.2.0/amd64/libvirt')
    expect(sha256(path.join(stored, 'box.img'))).toBe(sha256(path.join(folder, 'box.img')))
    expect(JSON.parse(readFileSync(path.join(stored, 'source.json'), 'utf8')).url).toMatch(/^file:\/\/.*\/mybox$/)
    // The source is left as it was: the store holds its own copy.
    expect(existsSync(path.join(folder, 'box.img'))).toBe(true)
    expect(leftovers()).toEqual([])
    expect((await addBox({source: folder, env})).alreadyPresent).toBe(true)
  })

  it('adds a v2 multi-disk folder with kernel and initrd', async () => {
    const {root, env, work} = setup()
    const folder = boxFolder(
      path.join(work, 'multi'),
      {
        provider: 'libvirt',
        format: 'qcow2',
        name: 'org/multi',
        version: '2.0',
        disks: [{path: 'box_1.img'}, {path: 'box_2.img', format: 'qcow2'}],
        kernel: 'vmlinuz',
        initrd: 'initrd.img',
      },
      ['box_1.img', 'box_2.img'],
    )
    writeFileSync(path.join(folder, 'vmlinuz'), 'kernel')
    writeFileSync(path.join(folder, 'initrd.img'), 'initrd')
    const result = await addBox({source: folder, env, architecture: 'amd64'})
    expect(result.box).toMatchObject({name: 'org/multi', version: '2.0'})
    const stored = path.join(root, 'org-VAGRANTSLASH-multi/2.0/amd64/libvirt')
    expect(readdirSync(stored).sort()).toEqual(['box_1.img', 'box_2.img', 'initrd.img', 'metadata.json', 'source.json', 'vmlinuz'])
  })

  it("reads name, version and architecture from Vagrant's store layout (leaf, version and name folders)", async () => {
    const {root, env, work} = setup()
    const vagrantBoxes = path.join(work, '.vagrant.d', 'boxes')
    const named = path.join(vagrantBoxes, 'generic-VAGRANTSLASH-debian12')
    // Vagrant writes metadata.json without name or version: the path says them.
    boxFolder(path.join(named, '4.3.2', 'libvirt'), {provider: 'libvirt', format: 'qcow2', virtual_size: 1})
    boxFolder(path.join(named, '4.3.10', 'amd64', 'libvirt'), {provider: 'libvirt', format: 'qcow2', virtual_size: 1})
    boxFolder(path.join(named, '4.3.10', 'amd64', 'virtualbox'), {provider: 'virtualbox'}, [])
    boxFolder(path.join(named, '5.0.0', 'arm64', 'libvirt'), {provider: 'libvirt', format: 'qcow2'})

    const leaf = await addBox({source: path.join(named, '4.3.2', 'libvirt'), env, architecture: 'amd64'})
    expect(leaf.box).toMatchObject({name: 'generic/debian12', version: '4.3.2', architecture: 'amd64', provider: 'libvirt'})

    // The NAME folder: the newest version with a box for this architecture (5.0.0 is arm64 only).
    const newest = await addBox({source: named, env, architecture: 'amd64'})
    expect(newest.box).toMatchObject({name: 'generic/debian12', version: '4.3.10', architecture: 'amd64'})
    expect(newest.url).toContain('/4.3.10/amd64/libvirt')

    const constrained = await addBox({source: named, env, architecture: 'amd64', constraint: '< 4.3.10', force: true})
    expect(constrained.box.version).toBe('4.3.2')

    const version = await addBox({source: path.join(named, '5.0.0'), env, architecture: 'arm64'})
    expect(version.box).toMatchObject({version: '5.0.0', architecture: 'arm64'})
    expect(readdirSync(path.join(root, 'generic-VAGRANTSLASH-debian12')).sort()).toEqual(['4.3.10', '4.3.2', '5.0.0'])

    // A name given on the command line wins.
    const renamed = await addBox({source: path.join(named, '4.3.2', 'libvirt'), env, name: 'mine/deb', architecture: 'amd64'})
    expect(renamed.box).toMatchObject({name: 'mine/deb', version: '4.3.2'})
  })

  it('keeps within the same bounds as an archive (VM_BOX_MAX_UNPACKED, free space), leaving nothing behind', async () => {
    const {root, env, work, leftovers} = setup()
    const folder = boxFolder(path.join(work, 'big'), {provider: 'libvirt', format: 'qcow2', name: 'org/big', version: '1'})
    const ceiling = addBox({source: folder, env: {...env, VM_BOX_MAX_UNPACKED: '1K'}, architecture: 'amd64'})
    await expect(ceiling).rejects.toMatchObject({code: 'BOX_TOO_BIG'})
    const full = addBox({
      source: folder,
      env,
      architecture: 'amd64',
      limits: {freeSpace: async () => ({available: 1 << 20, size: 1 << 30})},
    })
    await expect(full).rejects.toMatchObject({code: 'DISK_FULL'})
    expect(leftovers()).toEqual([])
    expect(readdirSync(root)).toEqual([])
  })

  it('two adds of the same folder at once: one installs it, the other finds it', async () => {
    const {env, work, leftovers} = setup()
    const folder = boxFolder(path.join(work, 'twice'), {provider: 'libvirt', format: 'qcow2', name: 'org/twice', version: '1'})
    const results = await Promise.all([1, 2].map(() => addBox({source: folder, env, architecture: 'amd64'})))
    expect(results.map((result) => result.alreadyPresent).sort()).toEqual([false, true])
    expect(leftovers()).toEqual([])
  })

  const cases: Array<{label: string; make: (dir: string) => void; message: RegExp}> = [
    {label: 'an empty folder', make: (dir) => mkdirSync(dir), message: /Cannot add the folder .*\/bad: it is empty/},
    {
      label: 'a folder without metadata.json',
      make: (dir) => makeDisk(path.join(dir, 'box.img')),
      message: /Cannot add the folder .*\/bad: it has no metadata\.json/,
    },
    {
      label: 'a folder whose disks are missing',
      make: (dir) =>
        boxFolder(dir, {provider: 'libvirt', name: 'org/x', version: '1', disks: [{path: 'box_1.img'}, {path: 'box_2.img'}]}, [
          'box_1.img',
        ]),
      message: /Cannot add the folder .*\/bad: metadata\.json names box_2\.img, which is not in the folder/,
    },
    {
      label: 'a folder without box.img',
      make: (dir) => boxFolder(dir, {provider: 'libvirt', name: 'org/x', version: '1'}, []),
      message: /Cannot add the folder .*\/bad: metadata\.json names box\.img, which is not in the folder/,
    },
    {
      label: 'a folder whose disk is not a disk',
      make: (dir) => {
        boxFolder(dir, {provider: 'libvirt', name: 'org/x', version: '1'}, [])
        writeFileSync(path.join(dir, 'box.img'), 'hello')
      },
      message: /Refusing the box from file:.*\/bad: box\.img is not a qcow2 image/,
    },
    {
      label: 'a Vagrant NAME folder with no box for this host',
      make: (dir) => boxFolder(path.join(dir, '1.0', 'virtualbox'), {provider: 'virtualbox'}, []),
      message: /Cannot add the folder .*\/bad: none of its versions \(1\.0\) holds a box for qemu or libvirt, amd64/,
    },
  ]
  for (const entry of cases) {
    it(`refuses ${entry.label}, naming the folder, and stores nothing`, async () => {
      const {root, env, work, leftovers} = setup()
      const dir = path.join(work, 'bad')
      entry.make(dir)
      const adding = addBox({source: dir, env, architecture: 'amd64'})
      await expect(adding).rejects.toMatchObject({code: 'BOX_INVALID'})
      await expect(adding).rejects.toThrow(entry.message)
      expect(leftovers()).toEqual([])
      expect(existsSync(root) ? readdirSync(root) : []).toEqual([])
    })
  }
})
