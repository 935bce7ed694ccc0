import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {randomBytes} from 'node:crypto'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {addBox, type AddBoxOptions} from '../../src/box/add.js'
import {findBox, hostArchitecture, listBoxes} from '../../src/box/store.js'
import {VmError} from '../../src/errors/errors.js'
import {catalogJson, makeBox, makeDisk, sha256, startServer, type TestServer} from '../helpers/box-fixtures.js'

const arch = hostArchitecture()
let server: TestServer
let work: string
let goodBox: string
let goodBytes: Buffer

function home(): NodeJS.ProcessEnv {
  return {...process.env, VM_HOME: mkdtempSync(path.join(work, 'home-')), VM_NO_BUILTIN_REGISTRY: '1', VM_BOX_REGISTRIES: ''}
}

function add(env: NodeJS.ProcessEnv, options: Partial<AddBoxOptions> & {source: string}) {
  return addBox({env, cwd: work, retryDelayMs: 5, architecture: arch, ...options})
}

/** The store holds nothing at all: no box, no temp directory. */
function expectEmptyStore(env: NodeJS.ProcessEnv): void {
  const boxes = path.join(env.VM_HOME!, 'data', 'boxes')
  const left = existsSync(boxes) ? readdirSync(boxes) : []
  expect(left).toEqual([])
}

async function failure(promise: Promise<unknown>): Promise<VmError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(VmError)
  return error as VmError
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-box-add-'))
  goodBox = makeBox(work, 'good.box', {
    metadata: {
      provider: 'libvirt',
      format: 'qcow2',
      virtual_size: 1,
      kernel: 'vmlinuz',
      ssh_user: 'vm',
      name: 'test/good',
      version: '1.0.0',
    },
    files: {vmlinuz: randomBytes(2 << 20)},
  })
  goodBytes = readFileSync(goodBox)
  server = await startServer()
})

afterAll(async () => {
  await server.close()
})

describe('vm box add over HTTP', () => {
  it('adds from a catalog with a relative URL and a checksum, read-only disks in the Vagrant layout', async () => {
    server.routes.set('/a/good.box', {body: goodBytes})
    server.routes.set('/a/test.json', {
      body: Buffer.from(catalogJson('test/good', [{version: '1.0.0', url: 'good.box', checksum: sha256(goodBox), architecture: arch}])),
    })
    const env = home()
    const result = await add(env, {source: `${server.url}/a/test.json`})
    expect(result.alreadyPresent).toBe(false)
    expect(result.box.dir).toBe(path.join(env.VM_HOME!, 'data', 'boxes', 'test-VAGRANTSLASH-good', '1.0.0', arch, 'libvirt'))
    expect(statSync(result.box.disks[0]!.path).mode & 0o777).toBe(0o444)
    expect(result.box.kernel).toBe(path.join(result.box.dir, 'vmlinuz'))
    expect(result.box.sshUser).toBe('vm')
    expect(result.box.source?.catalogUrl).toBe(`${server.url}/a/test.json`)
    const found = await findBox('test/good', '>= 1.0', arch, {root: path.join(env.VM_HOME!, 'data', 'boxes')})
    expect(found?.version).toBe('1.0.0')
    const again = await add(env, {source: `${server.url}/a/test.json`})
    expect(again.alreadyPresent).toBe(true)
  })

  it('resumes with a Range request after the connection drops half way', async () => {
    server.routes.set('/drop/good.box', {body: goodBytes, dropAfter: Math.floor(goodBytes.length / 2)})
    const env = home()
    const result = await add(env, {source: `${server.url}/drop/good.box`, checksum: sha256(goodBox), checksumType: 'sha256'})
    expect(result.box.name).toBe('test/good')
    const ranges = server.log.filter((entry) => entry.path === '/drop/good.box').map((entry) => entry.range)
    expect(ranges).toHaveLength(2)
    expect(ranges[0]).toBeUndefined()
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1])
    expect(resumedAt).toBeGreaterThan(0)
    expect(resumedAt).toBeLessThanOrEqual(goodBytes.length / 2)
  })

  it('keeps a partial download across runs and resumes it on the next add', async () => {
    const third = Math.floor(goodBytes.length / 3)
    server.routes.set('/later/good.box', {body: goodBytes, dropAfter: third})
    const env = home()
    const options = {source: `${server.url}/later/good.box`, retries: 0, checksum: sha256(goodBox), checksumType: 'sha256'}
    const error = await failure(add(env, options))
    expect(error.message).toContain('failed after 1 attempts')
    expect(error.hint).toContain('resume')
    expectEmptyStore(env)
    const result = await add(env, options)
    expect(result.box.name).toBe('test/good')
    const ranges = server.log.filter((entry) => entry.path === '/later/good.box').map((entry) => entry.range)
    expect(ranges).toHaveLength(2)
    expect(Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThan(0)
    expect(readdirSync(path.join(env.VM_HOME!, 'cache', 'downloads')).filter((file) => file.endsWith('.part'))).toEqual([])
  })

  it('starts over cleanly when the server ignores ranges', async () => {
    server.routes.set('/norange/good.box', {body: goodBytes, ranges: false, dropAfter: 100_000})
    const env = home()
    const result = await add(env, {source: `${server.url}/norange/good.box`})
    expect(result.box.version).toBe('1.0.0')
  })

  it('follows redirects', async () => {
    server.routes.set('/moved/good.box', {body: Buffer.alloc(0), redirect: '/a/good.box'})
    const env = home()
    expect((await add(env, {source: `${server.url}/moved/good.box`})).box.name).toBe('test/good')
  })

  it('names the URL on 404 and leaves the store empty', async () => {
    const env = home()
    const error = await failure(add(env, {source: `${server.url}/nothing/here.box`}))
    expect(error.message).toContain(`${server.url}/nothing/here.box answered 404`)
    expect(error.hint).toContain('Check the URL')
    expectEmptyStore(env)
  })

  it('retries a 500 and then fails clearly', async () => {
    server.routes.set('/broken.box', {body: Buffer.alloc(0), status: 500})
    const env = home()
    const error = await failure(add(env, {source: `${server.url}/broken.box`, retryDelayMs: 1}))
    expect(error.message).toMatch(/failed after 6 attempts: 500/)
    expect(server.log.filter((entry) => entry.path === '/broken.box').length).toBe(6)
    expectEmptyStore(env)
  })

  it('reports a checksum mismatch with expected and actual digests', async () => {
    server.routes.set('/sum/good.box', {body: goodBytes})
    server.routes.set('/sum/test.json', {
      body: Buffer.from(catalogJson('test/good', [{version: '1.0.0', url: 'good.box', checksum: 'ab'.repeat(32), architecture: arch}])),
    })
    const env = home()
    const error = await failure(add(env, {source: `${server.url}/sum/test.json`}))
    expect(error.message).toContain('Checksum mismatch')
    expect(error.details.join('\n')).toContain(`expected sha256 ${'ab'.repeat(32)}`)
    expect(error.details.join('\n')).toContain(`got      sha256 ${sha256(goodBox)}`)
    expectEmptyStore(env)
  })

  it('finds a short name in an HTTP registry (org/box.json) and lists what it tried when missing', async () => {
    server.routes.set('/reg/test/good.json', {
      body: Buffer.from(catalogJson('test/good', [{version: '2.0.0', url: '../../a/good.box', architecture: arch}])),
    })
    const env = {...home(), VM_BOX_REGISTRIES: `${server.url}/reg`}
    const result = await add(env, {source: 'test/good'})
    expect(result.box.version).toBe('2.0.0')
    const error = await failure(add(env, {source: 'test/missing'}))
    expect(error.message).toContain('"test/missing" was not found')
    expect(error.details).toContain(`tried ${server.url}/reg/api/v2/vagrant/test/missing: not found`)
    expect(error.details).toContain(`tried ${server.url}/reg/test/missing.json: not found`)
  })

  it('sends VM_BOX_TOKEN as a bearer token', async () => {
    const env = {...home(), VM_BOX_TOKEN: 'secret'}
    await add(env, {source: `${server.url}/a/good.box`})
    expect(server.log.at(-1)?.authorization).toBe('Bearer secret')
  })

  it('lets a second concurrent add wait and reuse the first', async () => {
    server.routes.set('/slow/good.box', {body: goodBytes, delayMs: 5})
    const env = home()
    const [one, two] = await Promise.all([
      add(env, {source: `${server.url}/slow/good.box`, name: 'test/good'}),
      add(env, {source: `${server.url}/slow/good.box`, name: 'test/good'}),
    ])
    expect([one.alreadyPresent, two.alreadyPresent].sort()).toEqual([false, true])
    expect(server.log.filter((entry) => entry.path === '/slow/good.box').length).toBe(1)
  })
})

describe('vm box add from files', () => {
  it('adds zstd and uncompressed boxes, and a bare qcow2 image with --name', async () => {
    const env = home()
    const zst = makeBox(work, 'z.box', {compress: 'zstd', metadata: {provider: 'qemu', format: 'qcow2'}})
    expect((await add(env, {source: zst, name: 'test/zstd'})).box.provider).toBe('qemu')
    const plain = makeBox(work, 'plain.box', {compress: 'none'})
    expect((await add(env, {source: plain, name: 'test/plain'})).box.version).toBe('0')
    const image = makeDisk(path.join(work, 'bare.qcow2'))
    const bare = await add(env, {source: image, name: 'test/bare'})
    expect(bare.box.disks[0]!.format).toBe('qcow2')
    const unnamed = await failure(add(home(), {source: image}))
    expect(unnamed.message).toContain('--name')
    expect((await listBoxes(path.join(env.VM_HOME!, 'data', 'boxes'))).map((box) => box.name)).toEqual([
      'test/bare',
      'test/plain',
      'test/zstd',
    ])
  })

  it('stores a bare disk image as a cloud image, versioned by --box-version', async () => {
    const env = home()
    const image = makeDisk(path.join(work, 'cloud.qcow2'))
    const cloud = await add(env, {source: image, name: 'test/cloud', constraint: '1.2.3'})
    expect(cloud.box.version).toBe('1.2.3')
    expect(cloud.box.metadata.cloudInit).toBe(true)
    expect(JSON.parse(readFileSync(path.join(cloud.box.dir, 'metadata.json'), 'utf8')).cloud_init).toBe(true)
    expect((await add(env, {source: image, name: 'test/cloud0'})).box.version).toBe('0')
    const ranged = await failure(add(home(), {source: image, name: 'test/cloud', constraint: '>= 1.0'}))
    expect(ranged.message).toContain('--box-version')
    const plain = makeBox(work, 'plain-nocloud.box', {compress: 'none'})
    expect((await add(env, {source: plain, name: 'test/plain'})).box.metadata.cloudInit).toBe(false)
  })

  it('adds a multi-disk box', async () => {
    const env = home()
    const disk2 = makeDisk(path.join(work, 'multi', 'disk2.qcow2'))
    const file = makeBox(work, 'multi.box', {
      metadata: {provider: 'libvirt', format: 'qcow2', disks: [{path: 'box.img'}, {path: 'disk2.qcow2', name: 'data'}]},
      files: {'disk2.qcow2': readFileSync(disk2)},
    })
    const result = await add(env, {source: file, name: 'test/multi'})
    expect(result.box.disks.map((disk) => path.basename(disk.path))).toEqual(['box.img', 'disk2.qcow2'])
  })
})

describe('hostile archives are rejected and leave the store unchanged', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['path traversal', () => makeBox(work, 'dotdot.box', {extraEntries: ['../dotdot-victim']}), /points outside the box/],
    ['an absolute path', () => makeBox(work, 'abs.box', {extraEntries: [path.join(work, 'abs-victim')]}), /points outside the box/],
    ['a symlink escaping the box', () => makeBox(work, 'link.box', {extraEntries: ['escape']}), /is a link/],
    [
      'a disk backed by /etc/passwd',
      () =>
        makeBox(work, 'backing.box', {
          files: {'box.img': readFileSync(makeDisk(path.join(work, 'b', 'backed.qcow2'), {backing: '/etc/passwd'}))},
        }),
      /references the host file "\/etc\/passwd"/,
    ],
    [
      'a truncated gzip',
      () => {
        writeFileSync(path.join(work, 'trunc.box'), goodBytes.subarray(0, Math.floor(goodBytes.length / 2)))
        return path.join(work, 'trunc.box')
      },
      /truncated or corrupt/,
    ],
    [
      'a box.img that is not qcow2',
      () => makeBox(work, 'raw.box', {files: {'box.img': Buffer.alloc(1 << 20, 1)}}),
      /box.img is not a qcow2 image/,
    ],
    [
      'metadata naming a missing disk',
      () =>
        makeBox(work, 'missing.box', {metadata: {provider: 'libvirt', format: 'qcow2', disks: [{path: 'box.img'}, {path: 'gone.qcow2'}]}}),
      /names gone.qcow2, which is not in the archive/,
    ],
    ['a virtualbox box', () => makeBox(work, 'vbox.box', {metadata: {provider: 'virtualbox'}}), /not usable/],
  ]
  beforeAll(() => {
    writeFileSync(path.join(work, 'dotdot-victim'), 'x')
    writeFileSync(path.join(work, 'abs-victim'), 'x')
    mkdirSync(path.join(work, 'link.box.d'), {recursive: true})
    symlinkSync('/etc/passwd', path.join(work, 'link.box.d', 'escape'))
  })
  for (const [label, build, message] of cases) {
    it(label, async () => {
      const env = home()
      const error = await failure(add(env, {source: build(), name: 'test/hostile'}))
      expect(`${error.message}\n${error.details.join('\n')}`).toMatch(message)
      expect(error.hint).toBeDefined()
      expectEmptyStore(env)
    })
  }
})
