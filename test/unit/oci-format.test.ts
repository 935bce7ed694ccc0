import {createHash, randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {authorizationFor, findCredential, loadAuthorizations, storeCredential} from '../../src/box/credentials.js'
import {fetchCatalog} from '../../src/box/fetch.js'
import {parseManifest, parseRecipe, type Manifest} from '../../src/box/oci/artifact.js'
import {chunkFile, MAX_CHUNK, MIN_CHUNK} from '../../src/box/oci/chunker.js'
import {formatOciReference, isLoopbackHost, parseOciReference} from '../../src/box/oci/reference.js'
import {catalogJson, startServer} from '../helpers/box-fixtures.js'

const work = mkdtempSync(path.join(tmpdir(), 'vm-oci-format-'))
afterAll(() => rmSync(work, {recursive: true, force: true}))

describe('oci:// references', () => {
  it('reads host, port, repository, tag and digest', () => {
    expect(parseOciReference('oci://Registry.example.org:5000/team/debian:1.0.0')).toEqual({
      host: 'registry.example.org:5000',
      repository: 'team/debian',
      tag: '1.0.0',
      digest: undefined,
    })
    const digest = `sha256:${'a'.repeat(64)}`
    expect(parseOciReference(`oci://127.0.0.1/box@${digest}`)).toMatchObject({repository: 'box', tag: undefined, digest})
    expect(formatOciReference(parseOciReference('oci://h/r/b:2'))).toBe('oci://h/r/b:2')
  })

  it.each([
    ['oci://host', /names no repository/],
    ['oci://host/Team/Box', /not a repository name/],
    ['oci://host/box:-bad', /not a tag/],
    ['oci://host/box@sha256:123', /not a sha256/],
    ['oci://ho st/box', /not a host/],
    ['oci://host:99999/box', /not a host/],
    ['oci://host/../box', /not a repository name/],
  ])('refuses %s', (source, message) => {
    expect(() => parseOciReference(source)).toThrow(message)
  })

  it('knows loopback hosts (plain http allowed only there)', () => {
    expect(['127.0.0.1:5000', 'localhost', '[::1]:80'].map((host) => isLoopbackHost(host))).toEqual([true, true, true])
    expect(['10.0.0.1:5000', 'registry.example.org', '127.0.0.1.example.org'].map((host) => isLoopbackHost(host))).toEqual([
      false,
      false,
      false,
    ])
  })
})

describe('content-defined chunks', () => {
  async function digests(data: Buffer): Promise<string[]> {
    const file = path.join(work, `chunks-${randomBytes(4).toString('hex')}`)
    writeFileSync(file, data)
    const found: string[] = []
    let total = 0
    for await (const {offset, data: chunk} of chunkFile(file)) {
      expect(offset).toBe(total)
      total += chunk.length
      found.push(createHash('sha256').update(chunk).digest('hex'))
    }
    expect(total).toBe(data.length)
    return found
  }

  it('keeps most chunks when bytes are inserted or changed before them', async () => {
    const data = randomBytes(24 * 1024 * 1024)
    const before = await digests(data)
    for (const chunk of before) expect(chunk).toHaveLength(64)
    // 1000 bytes inserted at 5 MiB: every later chunk would move with fixed-size blocks.
    const inserted = Buffer.concat([data.subarray(0, 5 << 20), randomBytes(1000), data.subarray(5 << 20)])
    const after = await digests(inserted)
    const kept = after.filter((digest) => before.includes(digest)).length
    expect(kept).toBeGreaterThanOrEqual(before.length - 2)
  })

  it('bounds chunk sizes, also for runs of zeros', async () => {
    const file = path.join(work, 'zeros')
    writeFileSync(file, Buffer.alloc(9 * 1024 * 1024 + 17))
    const sizes: number[] = []
    for await (const {data} of chunkFile(file)) sizes.push(data.length)
    for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(MIN_CHUNK)
    for (const size of sizes) expect(size).toBeLessThanOrEqual(MAX_CHUNK)
  })
})

describe('box recipes from a registry are checked before anything is written', () => {
  const digest = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {mediaType: 'application/vnd.vmfile.box.config.v1+json', digest: digest('config'), size: 10},
    layers: [{mediaType: 'x', digest: digest('a'), size: 5}],
  }
  const recipe = (files: unknown, chunks: unknown = [{digest: digest('a'), size: 5, blob: digest('a'), blobSize: 5, gzip: false}]) =>
    JSON.stringify({schema: 1, box: {name: 'a/b', version: '1', architecture: 'amd64', provider: 'libvirt'}, files, chunks})

  it('accepts a sound recipe', () => {
    const parsed = parseRecipe(recipe([{path: 'metadata.json', role: 'metadata', size: 5, chunks: [0]}]), manifest, 'here')
    expect(parsed.files).toHaveLength(1)
  })

  it.each([
    ['a path out of the box folder', [{path: '../evil', role: 'disk', size: 5, chunks: [0]}], /leaves the box folder/],
    ['an absolute path', [{path: '/etc/passwd', role: 'disk', size: 5, chunks: [0]}], /leaves the box folder/],
    ['sizes that do not add up', [{path: 'metadata.json', role: 'metadata', size: 6, chunks: [0]}], /add up/],
    ['an unknown chunk', [{path: 'metadata.json', role: 'metadata', size: 5, chunks: [3]}], /not listed/],
    ['no metadata.json', [{path: 'box.img', role: 'disk', size: 5, chunks: [0]}], /no metadata.json/],
  ])('refuses %s', (_label, files, message) => {
    expect(() => parseRecipe(recipe(files), manifest, 'here')).toThrow(message)
  })

  it('refuses chunks that are not layers of the manifest or too large to hold', () => {
    const files = [{path: 'metadata.json', role: 'metadata', size: 5, chunks: [0]}]
    expect(() =>
      parseRecipe(recipe(files, [{digest: digest('b'), size: 5, blob: digest('b'), blobSize: 5, gzip: false}]), manifest, 'h'),
    ).toThrow(/not a layer/)
    const big = {...manifest, layers: [{mediaType: 'x', digest: digest('a'), size: 64 << 20}]}
    expect(() =>
      parseRecipe(
        recipe(
          [{...files[0], size: 64 << 20}],
          [{digest: digest('a'), size: 64 << 20, blob: digest('a'), blobSize: 64 << 20, gzip: false}],
        ),
        big,
        'h',
      ),
    ).toThrow(/larger than/)
  })

  it('refuses manifests of other artifacts', () => {
    expect(() =>
      parseManifest(
        JSON.stringify({...manifest, config: {...manifest.config, mediaType: 'application/vnd.oci.image.config.v1+json'}}),
        'h',
      ),
    ).toThrow(/is not a vm box/)
  })
})

describe('credentials for registries, catalogs and box URLs', () => {
  function env(label: string): NodeJS.ProcessEnv {
    const home = path.join(work, label)
    mkdirSync(path.join(home, 'docker'), {recursive: true})
    return {VM_HOME: home, DOCKER_CONFIG: path.join(home, 'docker'), HOME: home}
  }

  it('stores them 0600 and prefers them to Docker config entries', async () => {
    const e = env('store')
    writeFileSync(
      path.join(e.DOCKER_CONFIG!, 'config.json'),
      JSON.stringify({auths: {'https://reg.example.org': {auth: Buffer.from('docker:pw').toString('base64')}}}),
    )
    expect(await findCredential('reg.example.org', e)).toMatchObject({username: 'docker', password: 'pw'})
    const file = await storeCredential('reg.example.org', {username: 'me', password: 'secret'}, e)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(await findCredential('oci://reg.example.org/team/box:1', e)).toMatchObject({username: 'me', password: 'secret'})
    expect(await findCredential('other.example.org', e)).toBeUndefined()
  })

  it('asks a Docker credential helper', async () => {
    const e = env('helper')
    const bin = path.join(work, 'helper-bin')
    mkdirSync(bin, {recursive: true})
    const helper = path.join(bin, 'docker-credential-vmtest')
    writeFileSync(helper, '#!/bin/sh\nread host\necho "{\\"Username\\":\\"h-user\\",\\"Secret\\":\\"h-$host\\"}"\n', {mode: 0o755})
    writeFileSync(path.join(e.DOCKER_CONFIG!, 'config.json'), JSON.stringify({credHelpers: {'reg.example.org:5000': 'vmtest'}}))
    e.PATH = `${bin}:${process.env.PATH}`
    expect(await findCredential('reg.example.org:5000', e)).toMatchObject({username: 'h-user', password: 'h-reg.example.org:5000'})
  })

  it('sends the stored credential to catalogs and boxes on that host only, and VAGRANT_CLOUD_TOKEN to VAGRANT_SERVER_URL', async () => {
    const server = await startServer()
    try {
      const e = env('catalog')
      const host = new URL(server.url).host
      await storeCredential(host, {username: 'me', password: 'secret'}, e)
      server.routes.set('/org/box.json', {body: Buffer.from(catalogJson('org/box', [{version: '1.0.0', url: `${server.url}/box`}]))})
      await fetchCatalog(`${server.url}/org/box.json`, {env: e, authorizations: await loadAuthorizations(e)})
      expect(server.log.at(-1)?.authorization).toBe(authorizationFor({username: 'me', password: 'secret', from: ''}))
      // Through vm box add (the box itself is 404 here: only the header matters).
      await addBox({source: `${server.url}/org/box.json`, env: e, cwd: work}).catch(() => undefined)
      expect(server.log.filter((entry) => entry.path === '/box').map((entry) => entry.authorization)).toEqual([
        `Basic ${Buffer.from('me:secret').toString('base64')}`,
      ])
      // A token for the Vagrant server's host, nowhere else.
      const t = env('token')
      t.VAGRANT_CLOUD_TOKEN = 'tok'
      t.VAGRANT_SERVER_URL = server.url
      expect(await loadAuthorizations(t)).toEqual({[host]: 'Bearer tok'})
      t.VAGRANT_SERVER_URL = 'https://elsewhere.example.org'
      expect(await loadAuthorizations(t)).toEqual({'elsewhere.example.org': 'Bearer tok'})
    } finally {
      await server.close()
    }
  })
})
