import {describe, expect, it} from 'vitest'

import {parseCatalog, selectFromCatalog, toUrl} from '../../src/box/catalog.js'
import {UserError} from '../../src/errors/errors.js'

const provider = (name: string, architecture?: string, url = `${name}-${architecture ?? 'any'}.box`) => ({
  name,
  url,
  architecture,
  checksum_type: 'SHA256',
  checksum: 'AB'.repeat(32),
})

function catalog(
  versions: Array<{version: string; providers: Array<Record<string, unknown>>}>,
  url = 'https://boxes.example.com/org/box.json',
) {
  return parseCatalog(JSON.stringify({name: 'org/box', description: 'A box', versions}), url)
}

describe('box catalogs', () => {
  it('resolves relative URLs against the catalog URL, http or file', () => {
    const remote = catalog([{version: '1.0.0', providers: [provider('libvirt', 'amd64', 'v1/box.box')]}])
    expect(remote.versions[0]!.providers[0]!.url).toBe('https://boxes.example.com/org/v1/box.box')
    expect(remote.versions[0]!.providers[0]!.checksumType).toBe('sha256')
    const local = catalog([{version: '1.0.0', providers: [provider('libvirt', 'amd64', 'tiny.box')]}], toUrl('/srv/boxes/vmfile/tiny.json'))
    expect(local.versions[0]!.providers[0]!.url).toBe('file:///srv/boxes/vmfile/tiny.box')
    const absolute = catalog([{version: '1.0.0', providers: [provider('libvirt', 'amd64', 'https://cdn.example.com/x.box')]}])
    expect(absolute.versions[0]!.providers[0]!.url).toBe('https://cdn.example.com/x.box')
  })

  it('reads HCP-style answers (tag, download_url)', () => {
    const parsed = parseCatalog(
      JSON.stringify({
        tag: 'org/box',
        name: 'box',
        versions: [{version: '2.0', providers: [{name: 'libvirt', download_url: 'https://x/y.box'}]}],
      }),
      'https://x/api',
    )
    expect(parsed.name).toBe('org/box')
    expect(parsed.versions[0]!.providers[0]!.url).toBe('https://x/y.box')
  })

  it('prefers qemu over libvirt, unless --provider says otherwise', () => {
    const c = catalog([
      {version: '1.0.0', providers: [provider('virtualbox', 'amd64'), provider('libvirt', 'amd64'), provider('qemu', 'amd64')]},
    ])
    expect(selectFromCatalog(c, {architecture: 'amd64'}).provider.name).toBe('qemu')
    expect(selectFromCatalog(c, {architecture: 'amd64', provider: 'libvirt'}).provider.name).toBe('libvirt')
  })

  it('picks the entry for the architecture; entries without one fit any host', () => {
    const c = catalog([{version: '1.0.0', providers: [provider('libvirt', 'amd64'), provider('libvirt', 'arm64')]}])
    expect(selectFromCatalog(c, {architecture: 'arm64'}).provider.url).toContain('libvirt-arm64')
    const old = catalog([{version: '1.0.0', providers: [provider('libvirt')]}])
    expect(selectFromCatalog(old, {architecture: 'arm64'})).toMatchObject({version: '1.0.0', architecture: 'arm64'})
    const both = catalog([{version: '1.0.0', providers: [provider('libvirt'), provider('libvirt', 'amd64')]}])
    expect(selectFromCatalog(both, {architecture: 'amd64'}).provider.architecture).toBe('amd64')
  })

  it('takes the newest version meeting the constraint that has a usable provider', () => {
    const c = catalog([
      {version: '1.0.0', providers: [provider('libvirt', 'amd64')]},
      {version: '1.10.0', providers: [provider('virtualbox', 'amd64')]},
      {version: '1.2.0', providers: [provider('libvirt', 'amd64')]},
      {version: '2.0.0', providers: [provider('libvirt', 'amd64')]},
    ])
    expect(selectFromCatalog(c, {architecture: 'amd64'}).version).toBe('2.0.0')
    expect(selectFromCatalog(c, {architecture: 'amd64', constraint: '~> 1.0'}).version).toBe('1.2.0')
    expect(selectFromCatalog(c, {architecture: 'amd64', constraint: '< 1.2'}).version).toBe('1.0.0')
  })

  it('says what the catalog offers when nothing fits', () => {
    const c = catalog([{version: '1.0.0', providers: [provider('virtualbox', 'amd64')]}])
    let error: unknown
    try {
      selectFromCatalog(c, {architecture: 'amd64'})
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(UserError)
    expect((error as UserError).message).toBe('Box org/box has no version for qemu or libvirt on amd64')
    expect((error as UserError).details).toEqual(['offered 1.0.0: virtualbox/amd64'])
    expect(() => selectFromCatalog(c, {architecture: 'amd64', constraint: 'newest'})).toThrow(/Invalid version constraint/)
  })

  it('rejects documents that are not catalogs', () => {
    expect(() => parseCatalog('{"versions": []}', 'file:///x.json')).toThrow(/needs "name" and "versions"/)
    expect(() => parseCatalog('<html>', 'https://x/y.json')).toThrow(/is not a box catalog/)
  })
})
