import {execFileSync, spawn} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, writeSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'

import {Header} from 'tar'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'

import {makeBox, makeDisk, startServer, type TestServer} from '../helpers/box-fixtures.js'

/**
 * Hostile and broken inputs to `vm box add`, run through the built CLI: each ends with a clear
 * error and exit 1 (never 70 or a Node dump), and leaves no box, temp directory or lock file.
 */
const root = path.resolve(import.meta.dirname, '../..')
const bin = path.join(root, 'bin/run.js')
const MiB = 1 << 20
// Each test runs the built CLI a few times (about a second each on a busy machine).
vi.setConfig({testTimeout: 60_000})
let work: string
let server: TestServer
const mounts: string[] = []

function vm(env: NodeJS.ProcessEnv, args: string[]): Promise<{code: number | null; stderr: string; stdout: string}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {env, cwd: work})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

function home(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const dir = mkdtempSync(path.join(work, 'home-'))
  return {...process.env, VM_HOME: dir, VM_NO_BUILTIN_REGISTRY: '1', VM_BOX_REGISTRIES: '', NO_COLOR: '1', ...extra}
}

/** Every file left under a directory, relative to it. */
function leftovers(dir: string | undefined): string[] {
  if (dir === undefined || !existsSync(dir)) return []
  return readdirSync(dir, {recursive: true}).map(String)
}

/** The command failed as a user error and left nothing in the store or the download cache. */
async function expectCleanFailure(env: NodeJS.ProcessEnv, args: string[], message: RegExp): Promise<string> {
  const result = await vm(env, args)
  expect(result.stderr).toMatch(message)
  expect(result.stderr).not.toMatch(/Unhandled|node:internal|at .*\.js:\d+|This is a bug in vm/)
  expect(result.code).toBe(1)
  const boxes = env.VM_BOXES_DIR ?? path.join(env.VM_HOME!, 'data', 'boxes')
  const downloads = path.join(env.VM_CACHE_DIR ?? path.join(env.VM_HOME!, 'cache'), 'downloads')
  expect(leftovers(boxes)).toEqual([])
  expect(leftovers(downloads).filter((file) => !file.endsWith('.part') && !file.endsWith('.part.json'))).toEqual([])
  return result.stderr
}

/** A tmpfs of `size` at a fresh directory (the test runs as root, like the VM tests). */
function tmpfs(size: string): string {
  const dir = mkdtempSync(path.join(work, 'tmpfs-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  mounts.push(dir)
  return dir
}

/** A raw disk of `size` bytes that is zeros after an MBR boot signature: compresses to almost nothing. */
function zeroDisk(file: string, size: number): string {
  execFileSync('truncate', ['-s', String(size), file])
  const fd = openSync(file, 'r+')
  writeSync(fd, Buffer.from([0x55, 0xaa]), 0, 2, 510)
  closeSync(fd)
  return file
}

function zstd(file: string): string {
  execFileSync('zstd', ['-q', '-f', '-1', file, '-o', `${file}.zst`])
  return `${file}.zst`
}

/** A tar of `entries` (files in `dir`, in that order). */
function tarOf(dir: string, entries: string[], out: string): string {
  execFileSync('tar', ['-cf', out, '-C', dir, ...entries])
  return out
}

/** The first sector of a raw disk that is zeros after an MBR boot signature. */
function bootSector(): Buffer {
  const sector = Buffer.alloc(512)
  sector.writeUInt16BE(0x55aa, 510)
  return sector
}

/**
 * A compressed stream of `parts` (bytes, or a count of zero bytes) made without compressing
 * the zeros byte by byte: every MiB of zeros is the same small gzip member or zstd frame, and
 * both formats read concatenated members and frames as one stream. A 1 GiB bomb takes
 * milliseconds instead of seconds of gzip or zstd, which keeps these tests in the unit tier.
 */
function compressedZeros(parts: Array<Buffer | number>, format: 'gzip' | 'zstd'): Buffer {
  const pack = (data: Buffer): Buffer =>
    format === 'gzip' ? gzipSync(data, {level: 1}) : execFileSync('zstd', ['-q', '-1', '-c'], {input: data})
  const zeroMiB = pack(Buffer.alloc(MiB))
  const out: Buffer[] = []
  for (const part of parts) {
    if (typeof part !== 'number') out.push(pack(part))
    else for (let left = part; left > 0; left -= MiB) out.push(left >= MiB ? zeroMiB : pack(Buffer.alloc(left)))
  }
  return Buffer.concat(out)
}

/** A raw disk of `size` bytes (a multiple of 512), zeros after an MBR boot signature, as parts for compressedZeros. */
function zeroDiskParts(size: number): Array<Buffer | number> {
  return [bootSector(), size - 512]
}

/** A tar entry (header, content, padding to 512 bytes) as parts for compressedZeros. */
function tarEntry(name: string, content: Buffer | Array<Buffer | number>): Array<Buffer | number> {
  const parts = Buffer.isBuffer(content) ? [content] : content
  const size = parts.reduce<number>((sum, part) => sum + (typeof part === 'number' ? part : part.length), 0)
  const header = Buffer.alloc(512)
  new Header({path: name, size, mode: 0o644, mtime: new Date(0), type: 'File'}).encode(header, 0)
  const padding = (512 - (size % 512)) % 512
  return [header, ...parts, ...(padding === 0 ? [] : [padding])]
}

/** The two zero blocks that end a tar. */
const TAR_END = 1024

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-box-hostile-'))
  server = await startServer()
})

afterEach(() => {
  for (const dir of mounts.splice(0)) execFileSync('umount', [dir])
})

afterAll(async () => {
  await server.close()
  rmSync(work, {recursive: true, force: true})
})

describe('extraction is bounded (archive bombs stop early)', () => {
  it('stops a zstd bomb of a bare disk at VM_BOX_MAX_UNPACKED', async () => {
    const bomb = path.join(work, 'bomb.img.zst')
    writeFileSync(bomb, compressedZeros(zeroDiskParts(512 * MiB), 'zstd'))
    expect(readFileSync(bomb).length).toBeLessThan(100_000)
    const stderr = await expectCleanFailure(
      home({VM_BOX_MAX_UNPACKED: '32M'}),
      ['box', 'add', bomb, '--name', 'bomb/zstd'],
      /Stopped unpacking/,
    )
    expect(stderr).toContain('it unpacks to more than 32.0 MiB, the limit for any box (VM_BOX_MAX_UNPACKED)')
  })

  it('stops at the free-space margin of the filesystem holding the store', async () => {
    const store = tmpfs('64m')
    const bomb = path.join(work, 'free.img.zst')
    writeFileSync(bomb, compressedZeros(zeroDiskParts(512 * MiB), 'zstd'))
    const stderr = await expectCleanFailure(home({VM_BOXES_DIR: store}), ['box', 'add', bomb, '--name', 'bomb/free'], /Stopped unpacking/)
    expect(stderr).toMatch(/it would leave less than 3\.2 MiB free on the filesystem of/)
    const used = execFileSync('df', ['--output=used', '-B1', store]).toString().split('\n')[1]!.trim()
    expect(Number(used)).toBeLessThan(MiB)
  })

  it('refuses a gzip box larger than its metadata.json declares before writing it', async () => {
    const metadata = Buffer.from(JSON.stringify({provider: 'libvirt', format: 'raw', virtual_size: 0.001}))
    const box = path.join(work, 'declared.box')
    writeFileSync(
      box,
      compressedZeros([...tarEntry('metadata.json', metadata), ...tarEntry('box.img', zeroDiskParts(1100 * MiB)), TAR_END], 'gzip'),
    )
    const stderr = await expectCleanFailure(home(), ['box', 'add', box, '--name', 'bomb/declared'], /Stopped unpacking/)
    expect(stderr).toContain('the most its metadata.json allows (virtual_size 0.001 GB for 1 disk')
  })

  it('refuses more than 1 GiB of non-qcow2 files before metadata.json', async () => {
    const metadata = Buffer.from(JSON.stringify({provider: 'libvirt', format: 'raw'}))
    const box = path.join(work, 'late.box.zst')
    writeFileSync(
      box,
      compressedZeros([...tarEntry('box.img', zeroDiskParts(1100 * MiB)), ...tarEntry('metadata.json', metadata), TAR_END], 'zstd'),
    )
    const stderr = await expectCleanFailure(home(), ['box', 'add', box, '--name', 'bomb/late'], /Stopped unpacking/)
    expect(stderr).toContain('before its metadata.json it holds more than 1.0 GiB of files that are not qcow2 images')
  })

  it('refuses a qcow2 file larger than its own header allows', async () => {
    const dir = mkdtempSync(path.join(work, 'qcow-'))
    const disk = makeDisk(path.join(dir, 'box.img'), {size: '1M'})
    execFileSync('truncate', ['-s', String(80 * MiB), disk])
    writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({provider: 'libvirt', format: 'qcow2'}))
    const box = zstd(tarOf(dir, ['box.img', 'metadata.json'], path.join(work, 'qcow.box')))
    const stderr = await expectCleanFailure(home(), ['box', 'add', box, '--name', 'bomb/qcow2'], /Stopped unpacking/)
    expect(stderr).toContain('the most the qcow2 image box.img may take for the virtual size of 1.0 MiB in its header')
  })
})

describe('filesystem failures are user errors that leave nothing behind', () => {
  it('an archive with a directory and a file of the same name, in either order', async () => {
    const a = mkdtempSync(path.join(work, 'clash-'))
    writeFileSync(path.join(a, 'metadata.json'), '{"provider": "libvirt"}')
    mkdirSync(path.join(a, 'x'))
    const dirFirst = tarOf(a, ['metadata.json', 'x'], path.join(work, 'dir-first.tar'))
    const b = mkdtempSync(path.join(work, 'clash-'))
    writeFileSync(path.join(b, 'x'), 'file')
    execFileSync('tar', ['-rf', dirFirst, '-C', b, 'x'])
    await expectCleanFailure(home(), ['box', 'add', dirFirst, '--name', 't/clash'], /holds "x" twice, or as both a file and a directory/)
    const fileFirst = tarOf(b, ['x'], path.join(work, 'file-first.tar'))
    mkdirSync(path.join(a, 'x', 'y'))
    writeFileSync(path.join(a, 'x', 'y', 'z'), 'z')
    execFileSync('tar', ['-rf', fileFirst, '-C', a, 'x/y/z'])
    await expectCleanFailure(home(), ['box', 'add', fileFirst, '--name', 't/clash'], /"x\/y\/z" lies under a file of the archive/)
  })

  it('entry names too long for the filesystem', async () => {
    const dir = mkdtempSync(path.join(work, 'long-'))
    writeFileSync(path.join(dir, 'metadata.json'), '{"provider": "libvirt"}')
    const part = 'd'.repeat(250)
    const nested = Array.from({length: 18}, () => part).join('/')
    const script = `
import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
for name in sys.argv[2:]:
    data = b'{"provider": "libvirt"}' if name == 'metadata.json' else b'x'
    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
t.close()`
    const oneLong = path.join(work, 'long-one.tar')
    execFileSync('python3', ['-c', script, oneLong, 'metadata.json', 'n'.repeat(300)])
    await expectCleanFailure(home(), ['box', 'add', oneLong, '--name', 't/long'], /has a name longer than 255 bytes/)
    const deep = path.join(work, 'long-deep.tar')
    execFileSync('python3', ['-c', script, deep, `${nested}/file`])
    await expectCleanFailure(
      home(),
      ['box', 'add', deep, '--name', 't/long'],
      /Cannot unpack ".*" into ".*": the name is too long for the filesystem/,
    )
  })

  it('adding a folder that holds no box, or a device', async () => {
    const dir = mkdtempSync(path.join(work, 'a-dir-'))
    await expectCleanFailure(home(), ['box', 'add', dir, '--name', 't/dir'], /Cannot add the folder .*a-dir-.*: it is empty/)
    mkdirSync(path.join(work, 'org', 'box'), {recursive: true})
    await expectCleanFailure(home(), ['box', 'add', 'org/box'], /Cannot add the folder .*org\/box: it is empty/)
    await expectCleanFailure(home(), ['box', 'add', '/dev/zero', '--name', 't/dev'], /is not a regular file/)
  })

  it('a full download cache', async () => {
    const cache = tmpfs('2m')
    server.routes.set('/big.img', {body: readFileSync(zeroDisk(path.join(work, 'big.img'), 8 * MiB))})
    const env = home({VM_CACHE_DIR: cache})
    const stderr = await expectCleanFailure(env, ['box', 'add', `${server.url}/big.img`, '--name', 't/full'], /No space left on the disk/)
    expect(stderr).toContain(`cannot write the download cache "${cache}/downloads/`)
    expect(leftovers(path.join(cache, 'downloads')).filter((file) => file.endsWith('.lock'))).toEqual([])
  })
})

describe('only recognizable disk images and boxes are stored', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['an HTML page', () => `${server.url}/page.html`, /it looks like an HTML page/],
    ['200 bytes of a tar', () => `${server.url}/head.tar`, /it looks like the start of a tar archive, cut short/],
    ['a text file', () => write('notes.txt', 'just some notes\n'.repeat(100)), /it looks like text/],
    ['an empty gzip', () => write('empty.gz', execFileSync('gzip', ['-c'], {input: ''})), /it looks like empty/],
    [
      'gzip inside gzip',
      () => write('twice.gz', execFileSync('gzip', ['-c'], {input: execFileSync('gzip', ['-c'], {input: 'x'})})),
      /gzip-compressed data/,
    ],
    [
      'random bytes',
      () => write('random.bin', Buffer.from(Array.from({length: 4096}, (_, i) => (i * 7 + 1) % 256))),
      /data of an unknown kind/,
    ],
    ['a blank raw disk', () => write('blank.img', Buffer.alloc(MiB)), /zero bytes only/],
    [
      'a raw disk whose size is not a multiple of 512',
      () => write('odd.img', Buffer.concat([readFileSync(zeroDisk(path.join(work, 'odd0.img'), 4096)), Buffer.from('x')])),
      /not a multiple of 512/,
    ],
  ]
  function write(name: string, data: string | Buffer): string {
    writeFileSync(path.join(work, name), data)
    return path.join(work, name)
  }
  beforeAll(() => {
    server.routes.set('/page.html', {body: Buffer.from('<!DOCTYPE html>\n<html><body>Sign in</body></html>\n')})
    const tar = makeBox(work, 'for-head.box', {compress: 'none'})
    server.routes.set('/head.tar', {body: readFileSync(tar).subarray(0, 200)})
  })
  for (const [label, source, message] of cases) {
    it(label, async () => {
      const stderr = await expectCleanFailure(home(), ['box', 'add', source(), '--name', 't/notdisk'], message)
      expect(stderr).toContain('is not a box, a box catalog or a disk image')
    })
  }

  it('a raw disk inside a box must look like a disk too', async () => {
    const box = makeBox(work, 'html-raw.box', {
      metadata: {provider: 'libvirt', format: 'raw'},
      files: {'box.img': '<html>hello</html>'.padEnd(1024)},
    })
    await expectCleanFailure(home(), ['box', 'add', box, '--name', 't/rawhtml'], /box.img is not a disk image: it looks like an HTML page/)
  })

  it('real raw disks are accepted: a partition table, or an ext4 filesystem', async () => {
    const env = home()
    const mbr = zeroDisk(path.join(work, 'mbr.img'), 4 * MiB)
    expect((await vm(env, ['box', 'add', mbr, '--name', 't/mbr'])).code).toBe(0)
    const ext4 = path.join(work, 'ext4.img')
    execFileSync('truncate', ['-s', '8M', ext4])
    execFileSync('mkfs.ext4', ['-q', '-F', ext4])
    expect((await vm(env, ['box', 'add', ext4, '--name', 't/ext4'])).code).toBe(0)
  })

  for (const [format, compress] of [
    ['zstd', ['zstd', '-q', '-c']],
    ['bzip2', ['bzip2', '-c']],
    ['gzip', ['gzip', '-c']],
  ] as const) {
    it(`a truncated ${format} archive`, async () => {
      const tar = readFileSync(makeBox(work, `trunc-${format}.box`, {compress: 'none', files: {filler: Buffer.alloc(4 * MiB, 7)}}))
      const packed = execFileSync(compress[0], compress.slice(1), {input: tar, maxBuffer: 1 << 30})
      const file = write(`trunc.${format}`, packed.subarray(0, Math.floor(packed.length / 2)))
      await expectCleanFailure(home(), ['box', 'add', file, '--name', 't/trunc'], new RegExp(`is truncated or corrupt \\(${format}: `))
    })
  }
})

describe('values from boxes are validated where they are read', () => {
  it('an ssh_user with a newline (ssh_config injection) is refused, escaped', async () => {
    const box = makeBox(work, 'inject.box', {
      metadata: {provider: 'libvirt', format: 'qcow2', ssh_user: 'vm\nProxyCommand touch /tmp/owned'},
    })
    const stderr = await expectCleanFailure(home(), ['box', 'add', box, '--name', 't/inject'], /is not usable/)
    expect(stderr).toContain('"ssh_user" is "vm\\nProxyCommand touch /tmp/owned"; it must be a user name')
  })

  it('org-VAGRANTSLASH-box cannot alias the stored org/box', async () => {
    const env = home()
    const box = makeBox(work, 'alias.box')
    expect((await vm(env, ['box', 'add', box, '--name', 'org/box'])).code).toBe(0)
    const result = await vm(env, ['box', 'add', box, '--name', 'org-VAGRANTSLASH-box', '--force'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('--name "org-VAGRANTSLASH-box" is not a usable box name')
    const list = await vm(env, ['box', 'list', '--json'])
    expect((JSON.parse(list.stdout) as {result: {boxes: Array<{name: string}>}}).result.boxes.map((box) => box.name)).toEqual(['org/box'])
  })
})
