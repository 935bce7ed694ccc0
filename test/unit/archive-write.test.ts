import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {unpackStream} from '../../src/box/archive.js'
import {archiveRuns, writeBoxArchive} from '../../src/box/archive-write.js'
import {RAW_BLOCK_MAX, rawZstdFileFrame, rawZstdFrame} from '../../src/box/zstd-raw.js'

let dir: string
let source: string
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vm-archive-write-'))
  source = path.join(dir, 'in')
  mkdirSync(path.join(source, 'include'), {recursive: true})
})
afterEach(() => rmSync(dir, {recursive: true, force: true}))

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** A kernel-like file: compressible, larger than one raw block. */
function compressible(bytes: number): Buffer {
  return Buffer.from('vmlinux text 0123456789 '.repeat(Math.ceil(bytes / 24)).slice(0, bytes))
}

describe('zstd frames of raw blocks', () => {
  it('zstd decodes them to the bytes they hold, at every size around the block limit', async () => {
    for (const size of [0, 1, RAW_BLOCK_MAX - 1, RAW_BLOCK_MAX, RAW_BLOCK_MAX + 1, 3 * RAW_BLOCK_MAX + 17]) {
      const data = randomBytes(size)
      // Chunks that do not line up with blocks.
      const chunks = [data.subarray(0, Math.floor(size / 3)), data.subarray(Math.floor(size / 3))]
      const frame = await collect(rawZstdFrame(chunks))
      expect(execFileSync('zstd', ['-dcq'], {input: frame}).equals(data), `size ${size}`).toBe(true)
    }
  })
  it('a chunk of the source comes out as one buffer, its block headers in place, however many blocks it holds', async () => {
    const data = randomBytes(8 * RAW_BLOCK_MAX + 5)
    const pieces: Buffer[] = []
    for await (const piece of rawZstdFrame([data.subarray(0, 1 << 20), data.subarray(1 << 20)])) pieces.push(piece)
    // Frame header, the 1 MiB chunk (8 blocks), the 5-byte rest, the empty last block.
    expect(pieces.map((piece) => piece.length)).toEqual([6, (1 << 20) + 8 * 3, 5 + 3, 3])
    expect(execFileSync('zstd', ['-dcq'], {input: Buffer.concat(pieces), maxBuffer: 1 << 24}).equals(data)).toBe(true)
  })
})

describe('a file as a zstd frame of raw blocks, read into reused buffers', () => {
  it('zstd decodes it to head, file and tail, at sizes around the block and read limits', async () => {
    const head = Buffer.from('header bytes')
    const tail = Buffer.alloc(300)
    for (const size of [0, 1, RAW_BLOCK_MAX, 8 * RAW_BLOCK_MAX - 1, 8 * RAW_BLOCK_MAX, 8 * RAW_BLOCK_MAX + 1, 17 * RAW_BLOCK_MAX + 5]) {
      const data = randomBytes(size)
      const file = path.join(dir, `data-${size}`)
      writeFileSync(file, data)
      // Each chunk copied as it comes: the frame reuses its buffers once the next is asked for.
      const chunks: Buffer[] = []
      for await (const chunk of rawZstdFileFrame(head, file, size, tail, () => new Error('changed'))) chunks.push(Buffer.from(chunk))
      const decoded = execFileSync('zstd', ['-dcq'], {input: Buffer.concat(chunks), maxBuffer: 1 << 24})
      expect(decoded.equals(Buffer.concat([head, data, tail])), `size ${size}`).toBe(true)
    }
  })
  it('a file shorter than its size fails with the error the caller makes', async () => {
    const file = path.join(dir, 'short')
    writeFileSync(file, randomBytes(10 * RAW_BLOCK_MAX))
    const reading = collect(
      rawZstdFileFrame(Buffer.alloc(0), file, 12 * RAW_BLOCK_MAX, Buffer.alloc(0), (read) => new Error(`read ${read}`)),
    )
    await expect(reading).rejects.toThrow(`read ${10 * RAW_BLOCK_MAX}`)
  })
})

describe('the box archive writer: compressed files stored, the rest compressed meanwhile', () => {
  it('a stored file is in the .box byte for byte (not compressed again); zstd, GNU tar, bsdtar and vm box add read it all back', async () => {
    const disk = randomBytes(RAW_BLOCK_MAX * 5 + 100)
    writeFileSync(path.join(source, 'metadata.json'), '{"provider":"libvirt"}')
    writeFileSync(path.join(source, 'disk.bin'), disk)
    writeFileSync(path.join(source, 'vmlinux'), compressible(3 << 20))
    writeFileSync(path.join(source, 'Vagrantfile'), 'Vagrant.configure("2") do |config| end\n')
    writeFileSync(path.join(source, 'include', 'notes.txt'), 'hello')
    const files = ['metadata.json', 'disk.bin', 'vmlinux', 'Vagrantfile', 'include/notes.txt']
    const file = path.join(dir, 'out.box')
    const written = await writeBoxArchive({dir: source, files, file, compression: 'zstd', stored: ['disk.bin']})
    const box = readFileSync(file)
    expect(written).toEqual({file, size: box.length, sha256: createHash('sha256').update(box).digest('hex')})
    // The disk's first raw block is there as it is; the kernel was compressed.
    expect(box.indexOf(disk.subarray(0, RAW_BLOCK_MAX))).toBeGreaterThan(0)
    expect(box.length).toBeLessThan(disk.length + (1 << 20))
    expect(execFileSync('tar', ['--zstd', '-tf', file], {encoding: 'utf8'}).trim().split('\n')).toEqual(files)
    expect(execFileSync('bsdtar', ['-tf', file], {encoding: 'utf8'}).trim().split('\n')).toEqual(files)
    expect(execFileSync('bsdtar', ['-xOf', file, 'disk.bin']).equals(disk)).toBe(true)
    const target = path.join(dir, 'unpacked')
    const unpacked = await unpackStream(createReadStream(file), {dir: target, checksumType: 'sha256', where: file})
    expect(unpacked).toMatchObject({kind: 'tar', compression: 'zstd', digest: written.sha256, files})
    for (const name of files) expect(readFileSync(path.join(target, name)).equals(readFileSync(path.join(source, name))), name).toBe(true)
    expect(readdirSync(dir).sort()).toEqual(['in', 'out.box', 'unpacked'])
  })

  it('files given as later are read once they are ready, the others before; names too long for ustar survive', async () => {
    const long = `include/${'n'.repeat(140)}.txt`
    writeFileSync(path.join(source, 'vmlinux'), compressible(2 << 20))
    writeFileSync(path.join(source, long), 'long name')
    let markReady!: () => void
    const ready = new Promise<void>((resolve) => (markReady = resolve))
    const file = path.join(dir, 'later.box')
    const files = ['metadata.json', 'box.img', 'vmlinux', long]
    const writing = writeBoxArchive({
      dir: source,
      files,
      file,
      compression: 'zstd',
      stored: ['box.img'],
      later: {files: ['metadata.json', 'box.img'], ready},
    })
    // The kernel's run is compressed while the disk does not exist yet.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(readdirSync(dir).some((name) => name.startsWith('later.box.') && name.endsWith('.tmp.2'))).toBe(true)
    writeFileSync(path.join(source, 'metadata.json'), '{}')
    writeFileSync(path.join(source, 'box.img'), randomBytes(1000))
    markReady()
    await writing
    expect(execFileSync('bsdtar', ['-tf', file], {encoding: 'utf8'}).trim().split('\n')).toEqual(files)
    expect(execFileSync('tar', ['--zstd', '-xOf', file, long], {encoding: 'utf8'})).toBe('long name')
    expect(readdirSync(dir).sort()).toEqual(['in', 'later.box'])
  })

  it('when the later files never come, the writer fails with that reason and leaves nothing behind', async () => {
    writeFileSync(path.join(source, 'vmlinux'), compressible(2 << 20))
    const file = path.join(dir, 'failed.box')
    const reason = new Error('export failed')
    const writing = writeBoxArchive({
      dir: source,
      files: ['metadata.json', 'box.img', 'vmlinux'],
      file,
      compression: 'zstd',
      stored: ['box.img'],
      later: {files: ['metadata.json', 'box.img'], ready: Promise.reject(reason)},
    })
    await expect(writing).rejects.toBe(reason)
    expect(existsSync(file)).toBe(false)
    expect(readdirSync(dir)).toEqual(['in'])
  })

  it('runs: a stored file is a run of its own, header and data, and the end of the archive is in the last run', () => {
    expect(archiveRuns(['metadata.json', 'box.img', 'vmlinux'], new Set(['box.img']))).toEqual([
      {kind: 'compress', headers: ['metadata.json'], data: ['metadata.json'], end: false},
      {kind: 'store', headers: ['box.img'], data: ['box.img'], end: false},
      {kind: 'compress', headers: ['vmlinux'], data: ['vmlinux'], end: true},
    ])
    expect(archiveRuns(['box.img'], new Set(['box.img']))).toEqual([
      {kind: 'store', headers: ['box.img'], data: ['box.img'], end: false},
      {kind: 'compress', headers: [], data: [], end: true},
    ])
    expect(archiveRuns(['metadata.json', 'box.img'], new Set())).toEqual([
      {kind: 'compress', headers: ['metadata.json', 'box.img'], data: ['metadata.json', 'box.img'], end: true},
    ])
  })

  it('the first compressed run goes into the output as it is compressed: no part file is written for it', async () => {
    writeFileSync(path.join(source, 'metadata.json'), '{"provider":"libvirt"}')
    writeFileSync(path.join(source, 'vmlinux'), compressible(3 << 20))
    writeFileSync(path.join(source, 'box.img'), randomBytes(RAW_BLOCK_MAX + 1))
    const seen = new Set<string>()
    const watcher = watch(dir, (_event, name) => {
      if (name !== null) seen.add(name)
    })
    const file = path.join(dir, 'direct.box')
    const files = ['metadata.json', 'vmlinux', 'box.img']
    try {
      await writeBoxArchive({dir: source, files, file, compression: 'zstd', stored: ['box.img']})
    } finally {
      watcher.close()
    }
    expect([...seen].filter((name) => /\.tmp\.\d+$/.test(name))).toEqual([])
    expect(execFileSync('bsdtar', ['-tf', file], {encoding: 'utf8'}).trim().split('\n')).toEqual(files)
    expect(execFileSync('tar', ['--zstd', '-xOf', file, 'vmlinux'], {maxBuffer: 1 << 24}).equals(compressible(3 << 20))).toBe(true)
  })

  it('everything before a later stored file is in the output, hashed, before that file is ready', async () => {
    writeFileSync(path.join(source, 'metadata.json'), '{"provider":"libvirt"}')
    writeFileSync(path.join(source, 'vmlinux'), compressible(3 << 20))
    let markReady!: () => void
    const ready = new Promise<void>((resolve) => (markReady = resolve))
    const file = path.join(dir, 'early.box')
    const files = ['metadata.json', 'vmlinux', 'box.img']
    const writing = writeBoxArchive({
      dir: source,
      files,
      file,
      compression: 'zstd',
      stored: ['box.img'],
      later: {files: ['box.img'], ready},
    })
    const temp = (): string | undefined => readdirSync(dir).find((name) => /^early\.box\.\d+\.tmp$/.test(name))
    // Wait (up to 10 s) until the kernel's compressed run is in the output file itself.
    const decoded = (bytes: Buffer): number => {
      try {
        return bytes.length === 0
          ? 0
          : execFileSync('zstd', ['-dcq'], {input: bytes, stdio: ['pipe', 'pipe', 'ignore'], maxBuffer: 1 << 26}).length
      } catch {
        return -1 // a frame not written whole yet
      }
    }
    const deadline = Date.now() + 10_000
    let early: Buffer = Buffer.alloc(0)
    while (Date.now() < deadline) {
      const name = temp()
      early = name === undefined ? Buffer.alloc(0) : readFileSync(path.join(dir, name))
      if (decoded(early) >= 3 << 20) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(decoded(early)).toBeGreaterThanOrEqual(3 << 20)
    const disk = randomBytes(RAW_BLOCK_MAX * 2 + 7)
    writeFileSync(path.join(source, 'box.img'), disk)
    markReady()
    const written = await writing
    const box = readFileSync(file)
    // What was written early is the start of the archive, unchanged.
    expect(box.subarray(0, early.length).equals(early)).toBe(true)
    expect(written.sha256).toBe(createHash('sha256').update(box).digest('hex'))
    expect(execFileSync('bsdtar', ['-tf', file], {encoding: 'utf8'}).trim().split('\n')).toEqual(files)
    expect(execFileSync('tar', ['--zstd', '-xOf', file, 'box.img']).equals(disk)).toBe(true)
    expect(readdirSync(dir).sort()).toEqual(['early.box', 'in'])
  })
})
