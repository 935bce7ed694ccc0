import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {checkOutdated, updateBoxes} from '../../src/box/outdated.js'
import {login} from '../../src/box/oci/login.js'
import {pushBox} from '../../src/box/oci/push.js'
import {startCuttingProxy, startRegistry, startTokenService, type TestRegistry, type TokenService} from '../helpers/oci-registry.js'

/**
 * Boxes through a real registry (Debian's docker-registry on 127.0.0.1), without VMs: the
 * service functions against small raw-disk boxes. The e2e test boots a pulled box.
 */
const MiB = 1024 * 1024
const SIZE = 24 * MiB
let work: string
let disk1: Buffer
let disk2: Buffer

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** A store (VM_HOME) isolated from the user's Docker config. */
function home(label: string): NodeJS.ProcessEnv {
  const dir = path.join(work, label)
  mkdirSync(path.join(dir, 'docker'), {recursive: true})
  return {VM_HOME: dir, DOCKER_CONFIG: path.join(dir, 'docker'), HOME: dir}
}

/** Adds a box folder (raw disk) to the store of `env`. */
async function store(env: NodeJS.ProcessEnv, version: string, disk: Buffer): Promise<void> {
  const folder = path.join(work, `folder-${version}-${randomBytes(3).toString('hex')}`)
  mkdirSync(folder)
  writeFileSync(path.join(folder, 'metadata.json'), JSON.stringify({name: 'org/box', version, provider: 'libvirt', format: 'raw'}))
  writeFileSync(path.join(folder, 'box.img'), disk)
  await addBox({source: folder, env, cwd: work})
}

function storedDisk(env: NodeJS.ProcessEnv, version: string): Buffer {
  return readFileSync(path.join(env.VM_HOME!, 'data/boxes/org-VAGRANTSLASH-box', version, 'amd64/libvirt/box.img'))
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-oci-unit-'))
  disk1 = randomBytes(SIZE)
  // A boot-sector signature: a raw disk must look like one.
  disk1.fill(0, 0, 510)
  disk1[510] = 0x55
  disk1[511] = 0xaa
  // Version 1.0.1: 4 KiB changed in the middle.
  disk2 = Buffer.from(disk1)
  randomBytes(4096).copy(disk2, 10 * MiB)
})

afterAll(() => {
  rmSync(work, {recursive: true, force: true})
})

describe('a registry without auth on 127.0.0.1 (plain http)', () => {
  let registry: TestRegistry
  const publisher = () => home('publisher')

  beforeAll(async () => {
    registry = await startRegistry()
    await store(publisher(), '1.0.0', disk1)
    await store(publisher(), '1.0.1', disk2)
  })
  afterAll(async () => {
    await registry?.stop()
  })

  it('pushes, pulls into an empty store byte for byte, and moves only the changed chunks of a second version', async () => {
    const first = await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/team/box`, env: publisher()})
    expect(first.reference).toBe(`oci://${registry.host}/team/box:1.0.0`)
    expect(first.bytesSent).toBeGreaterThan(SIZE * 0.95)
    // Pushing the same version again sends no blob: every HEAD finds it.
    const again = await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/team/box`, env: publisher()})
    expect(again.blobsReused).toBe(again.blobs)
    expect(again.bytesSent).toBeLessThan(64 * 1024)

    const second = await pushBox({box: 'org/box@1.0.1', target: `oci://${registry.host}/team/box`, env: publisher()})
    expect(second.bytesSent).toBeLessThan(SIZE * 0.25)
    expect(second.bytesReused).toBeGreaterThan(SIZE * 0.75)

    const user = home('user')
    const pulled = await addBox({source: `oci://${registry.host}/team/box:1.0.0`, env: user, cwd: work})
    expect(pulled.alreadyPresent).toBe(false)
    expect(pulled.box.name).toBe('org/box')
    expect(sha(storedDisk(user, '1.0.0'))).toBe(sha(disk1))
    expect(readdirSync(path.join(user.VM_HOME!, 'data/boxes')).filter((name) => name.startsWith('.'))).toEqual([])

    // 1.0.1 next to 1.0.0: only the changed chunk comes over the network.
    const update = await addBox({source: `oci://${registry.host}/team/box:1.0.1`, env: user, cwd: work})
    expect(sha(storedDisk(user, '1.0.1'))).toBe(sha(disk2))
    expect(update.received).toBeLessThan(SIZE * 0.25)
    expect(update.reused).toBeGreaterThan(SIZE * 0.75)

    // By digest, into another store.
    const pinned = home('pinned')
    const byDigest = await addBox({source: `oci://${registry.host}/team/box@${first.digest}`, env: pinned, cwd: work})
    expect(byDigest.box.version).toBe('1.0.0')
    expect(sha(storedDisk(pinned, '1.0.0'))).toBe(sha(disk1))
  })

  it('vm box outdated and update read the repository tags', async () => {
    const user = home('outdated')
    await addBox({source: `oci://${registry.host}/team/box:1.0.0`, env: user, cwd: work})
    const [entry] = await checkOutdated({cwd: work, global: true, env: user})
    expect(entry).toMatchObject({name: 'org/box', installed: '1.0.0', latest: '1.0.1', outdated: true, problem: undefined})
    const {updated} = await updateBoxes({cwd: work, global: true, env: user})
    expect(updated).toEqual([{name: 'org/box', from: '1.0.0', to: '1.0.1', alreadyPresent: false}])
    expect(sha(storedDisk(user, '1.0.1'))).toBe(sha(disk2))
  })

  it('resumes a push and a pull cut mid-blob', async () => {
    // Push through a proxy that cuts the upload once, 10 MiB in (inside a blob's PATCH).
    const upProxy = await startCuttingProxy(registry.port, 'up', 10 * MiB)
    try {
      const pushed = await pushBox({box: 'org/box@1.0.0', target: `oci://${upProxy.host}/cut/box`, env: publisher(), retryDelayMs: 10})
      expect(upProxy.cuts).toBe(1)
      // Everything but the cut blob went once: at most one chunk (4 MiB) is sent again.
      expect(pushed.bytesSent).toBeLessThan(SIZE + 4 * MiB + 256 * 1024)
    } finally {
      await upProxy.close()
    }
    // A push that gives up (no retries) leaves the blobs it finished: the next push skips them.
    const giveUp = await startCuttingProxy(registry.port, 'up', 12 * MiB)
    try {
      await expect(
        pushBox({box: 'org/box@1.0.0', target: `oci://${giveUp.host}/cut/again`, env: publisher(), retries: 0}),
      ).rejects.toMatchObject({code: 'REGISTRY_FAILED'})
    } finally {
      await giveUp.close()
    }
    const resumed = await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/cut/again`, env: publisher()})
    expect(resumed.blobsReused).toBeGreaterThan(0)
    expect(resumed.bytesSent).toBeLessThan(SIZE - 6 * MiB)

    // Pull through a proxy that cuts the download 9 MiB in: it continues with a Range request.
    const downProxy = await startCuttingProxy(registry.port, 'down', 9 * MiB)
    try {
      const user = home('resume-pull')
      const pulled = await addBox({source: `oci://${downProxy.host}/cut/box:1.0.0`, env: user, cwd: work, retryDelayMs: 10})
      expect(downProxy.cuts).toBe(1)
      expect(downProxy.sawRange).toBe(true)
      expect(pulled.received).toBeLessThan(SIZE + 64 * 1024)
      expect(sha(storedDisk(user, '1.0.0'))).toBe(sha(disk1))
    } finally {
      await downProxy.close()
    }
    // A pull that gives up keeps the chunks it has: the next run fetches only the rest.
    const giveUpDown = await startCuttingProxy(registry.port, 'down', 14 * MiB)
    const user = home('resume-pull-2')
    try {
      await expect(addBox({source: `oci://${giveUpDown.host}/cut/box:1.0.0`, env: user, cwd: work, retries: 0})).rejects.toMatchObject({
        code: 'DOWNLOAD_FAILED',
      })
    } finally {
      await giveUpDown.close()
    }
    const second = await addBox({source: `oci://${registry.host}/cut/box:1.0.0`, env: user, cwd: work})
    expect(second.received).toBeLessThan(SIZE - 8 * MiB)
    expect(sha(storedDisk(user, '1.0.0'))).toBe(sha(disk1))
  })

  it('reads a pulled qcow2 disk from its header (no qemu-img), and still refuses one with a backing file', async () => {
    const folder = path.join(work, 'qcow2-folder')
    mkdirSync(folder)
    writeFileSync(
      path.join(folder, 'metadata.json'),
      JSON.stringify({name: 'org/qcow', version: '1.0.0', provider: 'libvirt', format: 'qcow2'}),
    )
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', path.join(folder, 'box.img'), '1G'])
    await addBox({source: folder, env: publisher(), cwd: work})
    await pushBox({box: 'org/qcow@1.0.0', target: `oci://${registry.host}/team/qcow`, env: publisher()})
    // A qemu-img that fails: the pull must not need it for a plain qcow2 disk.
    const fakeBin = path.join(work, 'failing-qemu-img')
    mkdirSync(fakeBin)
    writeFileSync(path.join(fakeBin, 'qemu-img'), '#!/bin/sh\necho "qemu-img must not run" >&2\nexit 1\n', {mode: 0o755})
    const user = home('qcow2-pull')
    const pathBefore = process.env.PATH
    process.env.PATH = `${fakeBin}:${pathBefore}`
    try {
      const added = await addBox({source: `oci://${registry.host}/team/qcow:1.0.0`, env: user, cwd: work})
      expect(added.alreadyPresent).toBe(false)
    } finally {
      process.env.PATH = pathBefore
    }
    const stored = path.join(user.VM_HOME!, 'data/boxes/org-VAGRANTSLASH-qcow/1.0.0/amd64/libvirt/box.img')
    expect(sha(readFileSync(stored))).toBe(sha(readFileSync(path.join(folder, 'box.img'))))

    // A publisher's disk that reads a host file (backing file): the header says so, qemu-img is asked and refuses it.
    const published = path.join(publisher().VM_HOME!, 'data/boxes/org-VAGRANTSLASH-qcow/1.0.0/amd64/libvirt/box.img')
    chmodSync(published, 0o644)
    rmSync(published)
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.join(folder, 'box.img'), '-F', 'qcow2', published])
    await pushBox({box: 'org/qcow@1.0.0', target: `oci://${registry.host}/team/backed`, env: publisher()})
    const victim = home('qcow2-backed')
    await expect(addBox({source: `oci://${registry.host}/team/backed:1.0.0`, env: victim, cwd: work})).rejects.toMatchObject({
      code: 'BOX_INVALID',
      message: expect.stringContaining('references the host file'),
    })
    expect(existsSync(path.join(victim.VM_HOME!, 'data/boxes/org-VAGRANTSLASH-qcow'))).toBe(false)
  })

  it('asks a loopback registry over plain http first (no TLS handshake) and pulls over a few kept-alive connections', async () => {
    // A pass-through proxy that counts connections and those opening with a TLS ClientHello.
    const counts = {connections: 0, tlsHellos: 0}
    const open = new Set<net.Socket>()
    const proxy = net.createServer((client) => {
      counts.connections++
      const upstream = net.connect(registry.port, '127.0.0.1')
      for (const socket of [client, upstream]) {
        open.add(socket)
        socket.on('error', () => undefined)
        socket.on('close', () => {
          open.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }
      client.once('data', (first: Buffer) => {
        if (first[0] === 0x16) counts.tlsHellos++
      })
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const host = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
    try {
      const pushed = await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/team/counted`, env: publisher()})
      counts.connections = 0
      const user = home('counted-pull')
      const added = await addBox({source: `oci://${host}/team/counted:1.0.0`, env: user, cwd: work})
      expect(added.received).toBeGreaterThan(SIZE * 0.95)
      expect(sha(storedDisk(user, '1.0.0'))).toBe(sha(disk1))
      expect(counts.tlsHellos).toBe(0)
      // Four blob workers plus the connection of the manifest and config, for all the blobs.
      expect(pushed.blobs).toBeGreaterThan(10)
      expect(counts.connections).toBeLessThanOrEqual(6)
    } finally {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
    }
  })

  it('takes a blob again from its start when the registry ignores the Range after a drop', async () => {
    // A proxy that drops the first download 3 MiB in and strips Range headers from requests.
    let down = 0
    let cuts = 0
    const open = new Set<net.Socket>()
    const proxy = net.createServer((client) => {
      const upstream = net.connect(registry.port, '127.0.0.1')
      for (const socket of [client, upstream]) {
        open.add(socket)
        socket.on('error', () => undefined)
        socket.on('close', () => {
          open.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }
      client.on('data', (data: Buffer) => upstream.write(data.toString('latin1').replace(/\r\nrange: [^\r]*/i, ''), 'latin1'))
      upstream.on('data', (data: Buffer) => {
        down += data.length
        if (cuts === 0 && down > 3 * MiB) {
          cuts++
          client.destroy()
          upstream.destroy()
          return
        }
        client.write(data)
      })
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const host = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
    try {
      await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/team/norange`, env: publisher()})
      const user = home('no-range')
      // One retry: the drop is the one failure; starting the blob over is not another.
      await addBox({source: `oci://${host}/team/norange:1.0.0`, env: user, cwd: work, retries: 1, retryDelayMs: 10})
      expect(cuts).toBe(1)
      expect(sha(storedDisk(user, '1.0.0'))).toBe(sha(disk1))
    } finally {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
    }
  })

  it('rejects a tampered blob and stores nothing', async () => {
    const pushed = await pushBox({box: 'org/box@1.0.0', target: `oci://${registry.host}/tampered/box`, env: publisher()})
    const manifest = JSON.parse(
      await (
        await fetch(`http://${registry.host}/v2/tampered/box/manifests/1.0.0`, {
          headers: {accept: 'application/vnd.oci.image.manifest.v1+json'},
        })
      ).text(),
    ) as {layers: Array<{digest: string; size: number}>}
    expect(pushed.blobs).toBe(manifest.layers.length)
    const victim = manifest.layers.find((layer) => layer.size > MiB)!
    const file = registry.blobFile(victim.digest)
    chmodSync(file, 0o644)
    const bytes = readFileSync(file)
    bytes[1000] = bytes[1000]! ^ 0xff
    writeFileSync(file, bytes)
    const user = home('tampered')
    await expect(addBox({source: `oci://${registry.host}/tampered/box:1.0.0`, env: user, cwd: work})).rejects.toMatchObject({
      code: 'BOX_CORRUPT',
      message: expect.stringContaining(victim.digest),
    })
    const boxes = path.join(user.VM_HOME!, 'data/boxes')
    expect(existsSync(path.join(boxes, 'org-VAGRANTSLASH-box'))).toBe(false)
    expect(readdirSync(boxes).filter((name) => name.startsWith('.tmp-'))).toEqual([])
  })
})

describe('a registry with htpasswd auth and a self-signed certificate', () => {
  let registry: TestRegistry
  const publisher = () => home('tls-publisher')

  beforeAll(async () => {
    registry = await startRegistry({tls: true, auth: {user: 'alice', password: 's3cret'}})
    await store(publisher(), '1.0.0', disk1.subarray(0, 4 * MiB))
  })
  afterAll(async () => {
    await registry?.stop()
  })

  it('refuses a wrong password, logs in, pushes and pulls with the stored or Docker credentials', async () => {
    const env = publisher()
    const target = `oci://${registry.host}/secure/box`
    await expect(pushBox({box: 'org/box', target, env, cacert: registry.ca})).rejects.toMatchObject({code: 'REGISTRY_AUTH'})
    await expect(pushBox({box: 'org/box', target, env})).rejects.toMatchObject({code: 'DOWNLOAD_TLS'})
    await expect(
      login({host: registry.host, username: 'alice', password: 'wrong', cacertFile: registry.caFile, env}),
    ).rejects.toMatchObject({
      code: 'REGISTRY_AUTH',
      message: expect.stringContaining('refused'),
    })
    const credentials = path.join(env.VM_HOME!, 'config/credentials.json')
    expect(existsSync(credentials)).toBe(false)
    await login({host: registry.host, username: 'alice', password: 's3cret', cacertFile: registry.caFile, env})
    expect(statSync(credentials).mode & 0o777).toBe(0o600)
    await pushBox({box: 'org/box', target, env, cacert: registry.ca})

    // Another user with no login is refused; with Docker's config (auths) the pull works.
    const other = home('tls-user')
    const source = `${target}:1.0.0`
    await expect(addBox({source, env: other, cwd: work, cacert: registry.caFile})).rejects.toMatchObject({code: 'REGISTRY_AUTH'})
    writeFileSync(
      path.join(other.DOCKER_CONFIG!, 'config.json'),
      JSON.stringify({auths: {[registry.host]: {auth: Buffer.from('alice:s3cret').toString('base64')}}}),
    )
    const pulled = await addBox({source, env: other, cwd: work, cacert: registry.caFile})
    expect(pulled.alreadyPresent).toBe(false)
    expect(sha(storedDisk(other, '1.0.0'))).toBe(sha(disk1.subarray(0, 4 * MiB)))
  })
})

describe('a registry with the Bearer token flow', () => {
  let registry: TestRegistry
  let tokens: TokenService

  beforeAll(async () => {
    tokens = await startTokenService('bob', 'tok-pass')
    registry = await startRegistry({token: {realm: tokens.realm, certFile: tokens.certFile}})
    await store(home('token-publisher'), '1.0.0', disk1.subarray(0, 2 * MiB))
  })
  afterAll(async () => {
    await registry?.stop()
    await tokens?.close()
  })

  it('gets a token for the repository scope with the stored credential, and refuses without one', async () => {
    const env = home('token-publisher')
    const target = `oci://${registry.host}/tokens/box`
    await expect(pushBox({box: 'org/box', target, env})).rejects.toMatchObject({code: 'REGISTRY_AUTH'})
    await expect(login({host: registry.host, username: 'bob', password: 'nope', env})).rejects.toMatchObject({code: 'REGISTRY_AUTH'})
    await login({host: registry.host, username: 'bob', password: 'tok-pass', env})
    const pushed = await pushBox({box: 'org/box', target, env})
    expect(pushed.reference).toBe(`${target}:1.0.0`)
    const before = tokens.issued
    const pulled = await addBox({source: `${target}:1.0.0`, env, force: true, cwd: work})
    expect(pulled.alreadyPresent).toBe(false)
    expect(tokens.issued).toBeGreaterThan(before)
  })
})
