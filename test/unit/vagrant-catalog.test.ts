import {execFile} from 'node:child_process'
import {createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs'
import {createServer, type IncomingHttpHeaders, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {boxFileUrl, parseBaseUrl, writeCatalogs} from '../../src/box/catalog-write.js'
import {lookupShortName} from '../../src/box/registry.js'
import {makeBox, sha256} from '../helpers/box-fixtures.js'

const run = promisify(execFile)

interface Seen {
  method: string
  path: string
  headers: IncomingHttpHeaders
}

/**
 * A static file server for DIR on 127.0.0.1, as a web server would be set up for a registry:
 * types by extension, and files without one (DIR/org/box) served as application/json. It
 * records every request.
 */
async function serveDir(dir: string, bare = 'application/json'): Promise<{url: string; seen: Seen[]; server: Server}> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname)
    seen.push({method: req.method ?? '', path: pathname, headers: req.headers})
    const file = path.join(dir, pathname)
    if (!file.startsWith(`${dir}/`) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end()
      return
    }
    const extension = path.extname(file)
    const type = extension === '.json' ? 'application/json' : extension === '' ? bare : 'application/octet-stream'
    res.writeHead(200, {'content-type': type, 'content-length': statSync(file).size})
    if (req.method === 'HEAD') res.end()
    else createReadStream(file).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server}
}

/** A proxy that answers nothing: any request Vagrant would send beyond 127.0.0.1 lands here. */
async function trapProxy(): Promise<{url: string; seen: string[]; server: Server}> {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    res.writeHead(403).end()
  })
  server.on('connect', (req, socket) => {
    seen.push(`CONNECT ${req.url}`)
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server}
}

let work: string
let dir: string
let served: Awaited<ReturnType<typeof serveDir>>
let trap: Awaited<ReturnType<typeof trapProxy>>
// A name that needs encoding in a URL: space, '#', '+'.
const BOX_FILE = 'tiny #1+x-1.2.3-amd64.box'

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-vagrant-'))
  dir = path.join(work, 'registry')
  mkdirSync(dir)
  makeBox(dir, BOX_FILE, {metadata: {provider: 'libvirt', format: 'qcow2', virtual_size: 1, name: 'org/tiny', version: '1.2.3'}})
  rmSync(path.join(dir, `${BOX_FILE}.d`), {recursive: true})
  rmSync(path.join(dir, `${BOX_FILE}.tar`))
  served = await serveDir(dir)
  trap = await trapProxy()
  // First as vm always wrote it (relative URLs), then again for Vagrant: the entry is replaced.
  await writeCatalogs({dir})
  await writeCatalogs({dir, baseUrl: served.url})
})

afterAll(async () => {
  for (const server of [served?.server, trap?.server]) {
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
  }
  rmSync(work, {recursive: true, force: true})
})

/** Runs Debian's vagrant with its own home, no checkpoint, and every proxy pointing at the trap. */
async function vagrant(home: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  mkdirSync(home, {recursive: true})
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    VAGRANT_HOME: path.join(home, '.vagrant.d'),
    VAGRANT_CHECKPOINT_DISABLE: '1',
    VAGRANT_NO_COLOR: '1',
    http_proxy: trap.url,
    https_proxy: trap.url,
    HTTP_PROXY: trap.url,
    HTTPS_PROXY: trap.url,
    ALL_PROXY: trap.url,
    all_proxy: trap.url,
    no_proxy: '127.0.0.1',
    NO_PROXY: '127.0.0.1',
    ...extra,
  }
  const {stdout} = await run('vagrant', args, {env, cwd: home, timeout: 90_000})
  return stdout
}

describe('catalogs that Vagrant reads', () => {
  it('with --base-url: absolute, encoded box URLs; the same catalog at DIR/org/box', () => {
    const catalog = JSON.parse(readFileSync(path.join(dir, 'tiny.json'), 'utf8')) as {
      versions: Array<{version: string; providers: Array<{url: string}>}>
    }
    expect(catalog.versions).toHaveLength(1)
    expect(catalog.versions[0]!.providers.map((provider) => provider.url)).toEqual([`${served.url}/tiny%20%231%2Bx-1.2.3-amd64.box`])
    expect(readFileSync(path.join(dir, 'org', 'tiny'), 'utf8')).toBe(readFileSync(path.join(dir, 'tiny.json'), 'utf8'))
    expect(statSync(path.join(dir, 'org', 'tiny')).mode & 0o777).toBe(0o644)
  })

  it('base URLs: a path is a directory, only http(s) and file, no query', () => {
    expect(boxFileUrl(parseBaseUrl('https://h.example/boxes'), 'a b.box')).toBe('https://h.example/boxes/a%20b.box')
    expect(boxFileUrl(parseBaseUrl('https://h.example/my%20boxes/'), '?.box')).toBe('https://h.example/my%20boxes/%3F.box')
    expect(() => parseBaseUrl('boxes.example.com')).toThrow(/is not a URL/)
    expect(() => parseBaseUrl('ftp://h/x')).toThrow(/not an http\(s\) or file URL/)
    expect(() => parseBaseUrl('https://h/x?y=1')).toThrow(/query or fragment/)
  })

  it('vagrant box add CATALOG-URL', {timeout: 120_000}, async () => {
    const home = path.join(work, 'vagrant-url')
    const before = served.seen.length
    await vagrant(home, ['box', 'add', '--provider', 'libvirt', `${served.url}/tiny.json`])
    expect(await vagrant(home, ['box', 'list'])).toMatch(/^org\/tiny\s+\(libvirt, 1\.2\.3\)$/m)
    const requests = served.seen.slice(before).map((entry) => `${entry.method} ${entry.path}`)
    expect(requests).toEqual(['HEAD /tiny.json', 'GET /tiny.json', `GET /${BOX_FILE}`])
    expect(trap.seen).toEqual([])
  })

  it('VAGRANT_SERVER_URL=BASE vagrant box add org/box', {timeout: 120_000}, async () => {
    const home = path.join(work, 'vagrant-server')
    const before = served.seen.length
    await vagrant(home, ['box', 'add', 'org/tiny', '--provider', 'libvirt'], {VAGRANT_SERVER_URL: served.url})
    expect(await vagrant(home, ['box', 'list'])).toMatch(/^org\/tiny\s+\(libvirt, 1\.2\.3\)$/m)
    const requests = served.seen.slice(before)
    // Vagrant asks BASE/org/box with Accept: application/json, and takes it as a catalog only
    // when the HEAD answer says Content-Type: application/json.
    expect(requests.map((entry) => `${entry.method} ${entry.path}`)).toEqual(['HEAD /org/tiny', 'GET /org/tiny', `GET /${BOX_FILE}`])
    expect(requests[0]!.headers.accept).toBe('application/json')
    expect(requests[1]!.headers.accept).toBe('application/json')
    expect(trap.seen).toEqual([])
    const stored = path.join(home, '.vagrant.d', 'boxes', 'org-VAGRANTSLASH-tiny', '1.2.3', 'libvirt')
    expect(existsSync(path.join(stored, 'box.img'))).toBe(true)

    // vm adds the box Vagrant unpacked, from its store folder and from the name folder.
    const vmHome = mkdtempSync(path.join(work, 'vm-'))
    const env = {VM_HOME: vmHome, VM_NO_BUILTIN_REGISTRY: '1'}
    const leaf = await addBox({source: stored, env, architecture: 'amd64'})
    expect(leaf.box).toMatchObject({name: 'org/tiny', version: '1.2.3', provider: 'libvirt'})
    expect(sha256(path.join(leaf.box.dir, 'box.img'))).toBe(sha256(path.join(stored, 'box.img')))
    const named = await addBox({source: path.dirname(path.dirname(stored)), env, architecture: 'amd64'})
    expect(named).toMatchObject({alreadyPresent: true, box: {name: 'org/tiny', version: '1.2.3'}})
  })

  it('a server that types files without an extension as octet-stream does not satisfy Vagrant', {timeout: 120_000}, async () => {
    // Most servers' default (nginx, python -m http.server): Vagrant then takes BASE/org/box for a box file.
    const plain = await serveDir(dir, 'application/octet-stream')
    try {
      const home = path.join(work, 'vagrant-plain')
      await expect(vagrant(home, ['box', 'add', 'org/tiny', '--provider', 'libvirt'], {VAGRANT_SERVER_URL: plain.url})).rejects.toThrow(
        /A name is required when adding a box file directly/,
      )
      expect(plain.seen.map((entry) => `${entry.method} ${entry.path}`)).toEqual(['HEAD /org/tiny'])
      expect(await vagrant(home, ['box', 'list'])).not.toMatch(/org\/tiny/)
    } finally {
      plain.server.closeAllConnections()
      await new Promise((resolve) => plain.server.close(resolve))
    }
    expect(trap.seen).toEqual([])
  })

  it('vm reads the same registry: catalog URL, short name over HTTP and from DIR', async () => {
    for (const [label, source, registries] of [
      ['catalog URL', `${served.url}/tiny.json`, ''],
      ['short name over HTTP', 'org/tiny', served.url],
      ['short name from DIR', 'org/tiny', dir],
    ] as const) {
      const vmHome = mkdtempSync(path.join(work, 'vm-'))
      const env = {VM_HOME: vmHome, VM_NO_BUILTIN_REGISTRY: '1', VM_BOX_REGISTRIES: registries}
      const result = await addBox({source, env, architecture: 'amd64'})
      expect(result.box, label).toMatchObject({name: 'org/tiny', version: '1.2.3', architecture: 'amd64', provider: 'libvirt'})
      expect(result.url, label).toBe(`${served.url}/tiny%20%231%2Bx-1.2.3-amd64.box`)
    }
    const fromDir = await lookupShortName('org/tiny', {env: {VM_BOX_REGISTRIES: dir, VM_NO_BUILTIN_REGISTRY: '1', VM_HOME: work}})
    expect(fromDir.url).toMatch(/\/registry\/org\/tiny$/)
  })

  it('without --base-url Vagrant cannot use the catalog; the proxy trap sees what leaves 127.0.0.1', {timeout: 120_000}, async () => {
    const relative = path.join(dir, 'relative')
    mkdirSync(relative)
    makeBox(relative, 'rel-1.0.0-amd64.box', {metadata: {provider: 'libvirt', format: 'qcow2', name: 'org/rel', version: '1.0.0'}})
    rmSync(path.join(relative, 'rel-1.0.0-amd64.box.d'), {recursive: true})
    rmSync(path.join(relative, 'rel-1.0.0-amd64.box.tar'))
    await writeCatalogs({dir: relative})
    const home = path.join(work, 'vagrant-relative')
    // Vagrant resolves the relative box URL against its working directory, not the catalog.
    await expect(vagrant(home, ['box', 'add', '--provider', 'libvirt', `${served.url}/relative/rel.json`])).rejects.toThrow(
      new RegExp(`${home}/rel-1\\.0\\.0-amd64\\.box`),
    )
    expect(await vagrant(home, ['box', 'list'])).not.toMatch(/org\/rel/)
    expect(trap.seen).toEqual([])
    // The trap works: a host other than 127.0.0.1 reaches it and nothing else.
    await expect(vagrant(home, ['box', 'add', '--provider', 'libvirt', 'http://boxes.example.com/x.json'])).rejects.toThrow()
    expect(trap.seen).toEqual(['HEAD http://boxes.example.com/x.json'])
    trap.seen.length = 0
  })
})
