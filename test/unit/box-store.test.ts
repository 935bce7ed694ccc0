import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {pruneBoxes} from '../../src/box/prune.js'
import {candidateUrls, configuredRegistries, isShortName} from '../../src/box/registry.js'
import {boxDir, escapeBoxName, findBox, hostArchitecture, listBoxes, unescapeBoxName, type BoxKey} from '../../src/box/store.js'
import {machinesUsing} from '../../src/box/usage.js'

function fakeStore(keys: BoxKey[]): {home: string; root: string; env: NodeJS.ProcessEnv} {
  const home = mkdtempSync(path.join(tmpdir(), 'vm-store-'))
  const root = path.join(home, 'data', 'boxes')
  for (const key of keys) {
    const dir = boxDir(key, root)
    mkdirSync(dir, {recursive: true})
    writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({provider: key.provider, format: 'qcow2'}))
    writeFileSync(path.join(dir, 'box.img'), 'disk')
  }
  return {home, root, env: {VM_HOME: home}}
}

const key = (version: string, provider = 'libvirt', architecture = 'amd64', name = 'org/box'): BoxKey => ({
  name,
  version,
  architecture,
  provider,
})

describe('the box store', () => {
  it('lays boxes out like Vagrant', () => {
    expect(escapeBoxName('org/box')).toBe('org-VAGRANTSLASH-box')
    expect(unescapeBoxName('org-VAGRANTSLASH-box')).toBe('org/box')
    expect(boxDir(key('1.0.0'), '/boxes')).toBe('/boxes/org-VAGRANTSLASH-box/1.0.0/amd64/libvirt')
    expect(hostArchitecture('x64')).toBe('amd64')
    expect(hostArchitecture('arm64')).toBe('arm64')
  })

  it('lists boxes newest first and finds the newest allowed, qemu before libvirt', async () => {
    const {root} = fakeStore([key('1.0.0'), key('1.10.0'), key('1.10.0', 'qemu'), key('1.2.0'), key('2.0.0', 'libvirt', 'arm64')])
    expect((await listBoxes(root)).map((box) => `${box.version}/${box.provider}/${box.architecture}`)).toEqual([
      '2.0.0/libvirt/arm64',
      '1.10.0/libvirt/amd64',
      '1.10.0/qemu/amd64',
      '1.2.0/libvirt/amd64',
      '1.0.0/libvirt/amd64',
    ])
    const newest = await findBox('org/box', undefined, 'amd64', {root})
    expect([newest?.version, newest?.provider]).toEqual(['1.10.0', 'qemu'])
    expect(newest?.disks).toEqual([
      {path: path.join(root, 'org-VAGRANTSLASH-box/1.10.0/amd64/qemu/box.img'), format: 'qcow2', name: undefined},
    ])
    expect((await findBox('org/box', '< 1.10', 'amd64', {root}))?.version).toBe('1.2.0')
    expect((await findBox('org/box', undefined, 'arm64', {root}))?.version).toBe('2.0.0')
    expect(await findBox('org/other', undefined, 'amd64', {root})).toBeUndefined()
  })

  it('knows which machines use a box, tolerating missing files', async () => {
    const {home, env} = fakeStore([])
    const project = path.join(home, 'project')
    mkdirSync(path.join(project, '.vm/machines/web'), {recursive: true})
    writeFileSync(path.join(project, '.vm/machines/web/machine.json'), JSON.stringify({box: key('1.0.0')}))
    mkdirSync(path.join(home, 'data'), {recursive: true})
    expect(await machinesUsing(key('1.0.0'), env)).toEqual([])
    writeFileSync(
      path.join(home, 'data/machines.json'),
      JSON.stringify({machines: [{name: 'web', projectDir: project}, {name: 'gone', projectDir: '/nonexistent'}, {bogus: true}]}),
    )
    expect((await machinesUsing(key('1.0.0'), env)).map((user) => user.machine)).toEqual(['web'])
    expect(await machinesUsing(key('1.2.0'), env)).toEqual([])
  })

  it('prunes old versions that no machine uses and keeps the newest', async () => {
    const {home, env, root} = fakeStore([key('1.0.0'), key('1.1.0'), key('1.2.0'), key('1.0.0', 'qemu')])
    const project = path.join(home, 'p')
    mkdirSync(path.join(project, '.vm/machines/db'), {recursive: true})
    writeFileSync(path.join(project, '.vm/machines/db/machine.json'), JSON.stringify({box: key('1.0.0')}))
    writeFileSync(path.join(home, 'data/machines.json'), JSON.stringify({machines: [{name: 'db', projectDir: project}]}))
    const dry = await pruneBoxes({dryRun: true, env})
    expect(dry.removed.map((box) => box.version)).toEqual(['1.1.0'])
    expect((await listBoxes(root)).length).toBe(4)
    await pruneBoxes({env})
    expect((await listBoxes(root)).map((box) => `${box.version}/${box.provider}`)).toEqual(['1.2.0/libvirt', '1.0.0/libvirt', '1.0.0/qemu'])
  })

  it('reads registries from VM_BOX_REGISTRIES and registries.json, and tries Vagrant URL conventions', () => {
    const {home} = fakeStore([])
    mkdirSync(path.join(home, 'config'), {recursive: true})
    writeFileSync(path.join(home, 'config/registries.json'), JSON.stringify({registries: ['/srv/boxes']}))
    expect(
      configuredRegistries({VM_HOME: home, VM_BOX_REGISTRIES: 'https://a.example, https://b.example', VM_NO_BUILTIN_REGISTRY: '1'}),
    ).toEqual(['https://a.example', 'https://b.example', '/srv/boxes'])
    expect(candidateUrls('https://a.example/', 'org/box')).toEqual([
      'https://a.example/api/v2/vagrant/org/box',
      'https://a.example/org/box.json',
      'https://a.example/org/box',
    ])
    expect(candidateUrls('/srv/boxes', 'org/box')).toEqual(['file:///srv/boxes/org/box.json', 'file:///srv/boxes/org/box'])
    expect(isShortName('vmfile/tiny')).toBe(true)
    expect(isShortName('./tiny.box')).toBe(false)
    expect(isShortName('https://x/y')).toBe(false)
  })
})
