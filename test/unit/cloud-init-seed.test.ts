import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {buildIsoImage, type ImageFile, writeSeedImage} from '../../src/cloud-init/iso9660.js'
import {seedFiles, writeNoCloudSeed} from '../../src/cloud-init/seed.js'
import {VmError} from '../../src/errors/errors.js'

// The images are read back by independent implementations, without mounting (this kernel has
// no iso9660 module): blkid (util-linux), isoinfo (genisoimage) and 7z (p7zip-full). All are in
// scripts/setup-host.sh; a missing one fails the test instead of skipping it.
const dir = mkdtempSync(path.join(os.tmpdir(), 'vm-seed-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

let counter = 0
async function image(files: ImageFile[], label = 'cidata'): Promise<string> {
  const file = path.join(dir, `seed-${counter++}.iso`)
  await writeSeedImage(file, files, label, new Date(Date.UTC(2026, 10, 30, 12, 34, 56, 780)))
  return file
}

function run(program: string, args: string[]): Buffer {
  return execFileSync(program, args, {maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe']})
}

function blkid(file: string): Record<string, string> {
  const out = run('blkid', ['-p', '-o', 'export', file]).toString('utf8')
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((line) => line.split('=', 2) as [string, string]),
  )
}

/** A file read through the Joliet tree by isoinfo. */
function isoinfoRead(file: string, name: string): Buffer {
  return run('isoinfo', ['-J', '-i', file, '-x', `/${name}`])
}

/** The Joliet names isoinfo lists (it shows the volume as a reader that knows Joliet). */
function isoinfoNames(file: string, joliet = true): string[] {
  const out = run('isoinfo', [...(joliet ? ['-J'] : []), '-l', '-i', file]).toString('utf8')
  return out
    .split('\n')
    .map((line) => /\]\s\s(.*) $/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name !== '.' && name !== '..' && name !== '\u0000' && name !== '\u0001')
}

/** A file read by 7z, which picks the Joliet tree itself. */
function sevenZipRead(file: string, name: string): Buffer {
  return run('7z', ['e', '-so', file, name])
}

function sevenZipNames(file: string): string[] {
  const out = run('7z', ['l', '-slt', '-sccUTF-8', file]).toString('utf8')
  return [...out.matchAll(/^Path = (.*)$/gm)].map((match) => match[1]!).filter((name) => name !== file)
}

/** Every file through both readers (7z extracts them all at once into a fresh folder). */
function expectReadsBack(file: string, files: ImageFile[]): void {
  const out = mkdtempSync(path.join(dir, 'x-'))
  run('7z', ['x', '-y', '-sccUTF-8', `-o${out}`, file])
  expect(readdirSync(out).sort()).toEqual(files.map((entry) => entry.name).sort())
  for (const {name, content} of files) {
    const expected = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content)
    expect(isoinfoRead(file, name).equals(expected), `isoinfo ${name}`).toBe(true)
    expect(readFileSync(path.join(out, name)).equals(expected), `7z ${name}`).toBe(true)
  }
  const names = files.map((entry) => entry.name).sort()
  expect(isoinfoNames(file).sort()).toEqual(names)
  expect(sevenZipNames(file).sort()).toEqual(names)
}

describe('NoCloud seed image (ISO 9660 + Joliet)', () => {
  it('is an iso9660 volume labelled cidata, as blkid sees it', async () => {
    const file = await image([{name: 'meta-data', content: 'instance-id: a\n'}])
    const found = blkid(file)
    expect(found.TYPE).toBe('iso9660')
    expect(found.LABEL).toBe('cidata')
    // blkid's UUID of an ISO 9660 volume is its creation date.
    expect(found.UUID).toBe('2026-11-30-12-34-56-78')
  })

  it('holds meta-data, user-data and network-config under their exact lower-case names', async () => {
    const files = seedFiles({
      instanceId: 'vm-0123456789abcdef-a1b2c3d4e5f6',
      hostname: 'web',
      user: 'vm',
      publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests vm@web',
      networkConfig: 'version: 2\nethernets: {}\n',
    })
    const file = await image(files)
    expectReadsBack(file, files)
    expect(isoinfoNames(file).sort()).toEqual(['meta-data', 'network-config', 'user-data'])
  })

  it('is a consistent volume: the size it declares, valid level 1 names, two descriptors', async () => {
    const file = await image([
      {name: 'meta-data', content: 'a'},
      {name: 'meta-data-1', content: 'b'},
      {name: 'meta-data-2', content: 'c'},
      {name: 'user-data', content: 'd'},
    ])
    const info = run('isoinfo', ['-d', '-i', file]).toString('utf8')
    expect(info).toContain('Volume id: cidata')
    expect(info).toContain('Logical block size is: 2048')
    expect(info).toContain('Joliet with UCS level 3 found')
    const sectors = Number(/Volume size is: (\d+)/.exec(info)?.[1])
    expect(sectors * 2048).toBe(statSync(file).size)
    // The primary directory: unique 8.3 upper-case d-character names with version 1.
    const primary = isoinfoNames(file, false)
    expect(primary).toHaveLength(4)
    expect(new Set(primary).size).toBe(4)
    for (const name of primary) expect(name).toMatch(/^[A-Z\d_]{1,8}\.[A-Z\d_]{0,3};1$/)
    expect(primary).toContain('META_DAT.;1')
  })

  it('writes the image with mode 0600 and leaves no temp file behind', async () => {
    const sub = mkdtempSync(path.join(dir, 'mode-'))
    const file = path.join(sub, 'seed.iso')
    writeFileSync(file, 'old')
    await writeNoCloudSeed(file, {
      instanceId: 'vm-0123456789abcdef-a1b2c3d4e5f6',
      hostname: 'db',
      user: 'vm',
      publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests',
    })
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readdirSync(sub)).toEqual(['seed.iso'])
    expect(blkid(file).LABEL).toBe('cidata')
    expect(isoinfoNames(file).sort()).toEqual(['meta-data', 'user-data'])
  })

  it('reads back an empty file', async () => {
    const files = [
      {name: 'meta-data', content: ''},
      {name: 'user-data', content: '#cloud-config\n'},
      {name: 'vendor-data', content: ''},
    ]
    const file = await image(files)
    expectReadsBack(file, files)
  })

  it('reads back a file larger than 64 KiB, byte for byte, beside small ones', async () => {
    const big = randomBytes(200 * 1024 + 7)
    const files = [
      {name: 'user-data', content: big},
      {name: 'meta-data', content: 'instance-id: big\n'},
      {name: 'network-config', content: randomBytes(2048)},
    ]
    const file = await image(files)
    expectReadsBack(file, files)
  })

  it('reads back many files, whose directories span several sectors', async () => {
    const files = Array.from({length: 80}, (_, index) => ({
      name: `file-with-a-long-lower-case-name-${String(index).padStart(3, '0')}`,
      content: `content ${index}\n`.repeat(index),
    }))
    const file = await image(files)
    // 80 Joliet records of ~124 bytes: more than one 2048-byte sector.
    expect(statSync(file).size).toBeGreaterThan(30 * 2048)
    expectReadsBack(file, files)
    expect(new Set(isoinfoNames(file, false)).size).toBe(80)
  })

  it('keeps unicode content as UTF-8 bytes, and a name with accents', async () => {
    const files = [
      {name: 'user-data', content: '#cloud-config\nwrite_files:\n- content: "héllo wörld ✓ 日本語 🚀"\n'},
      {name: 'café-data', content: 'ünïcödé\n'},
    ]
    const file = await image(files)
    expect(isoinfoRead(file, 'user-data').toString('utf8')).toBe(files[0]!.content)
    expect(sevenZipRead(file, 'café-data').toString('utf8')).toBe('ünïcödé\n')
    expect(sevenZipNames(file).sort()).toEqual(['café-data', 'user-data'])
  })

  it('takes another label', async () => {
    const file = await image([{name: 'a', content: 'b'}], 'CIDATA')
    expect(blkid(file).LABEL).toBe('CIDATA')
  })

  it('refuses names and labels it cannot represent, naming the problem, and writes nothing', async () => {
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['a/b', /flat directory/],
      ['semi;colon', /flat directory/],
      ['x'.repeat(65), /longer than 64/],
      ['trailing.', /ends with/],
      ['.', /directory/],
      ['tab\tname', /control character/],
      ['emoji-🚀', /Basic Multilingual Plane/],
    ]
    for (const [name, problem] of bad) {
      expect(() => buildIsoImage([{name, content: 'x'}], {label: 'cidata'})).toThrow(problem)
    }
    expect(() =>
      buildIsoImage(
        [
          {name: 'same', content: 'x'},
          {name: 'same', content: 'y'},
        ],
        {label: 'cidata'},
      ),
    ).toThrow(/same name/)
    expect(() => buildIsoImage([], {label: 'has space'})).toThrow(VmError)
    expect(() => buildIsoImage([], {label: 'a'.repeat(17)})).toThrow(/1 to 16/)
    const file = path.join(dir, 'refused.iso')
    await expect(writeSeedImage(file, [{name: 'a/b', content: ''}])).rejects.toThrow(VmError)
    expect(() => readFileSync(file)).toThrow(/ENOENT/)
  })

  it('is the same bytes for the same files and date', () => {
    const files = [{name: 'meta-data', content: 'x'}]
    const date = new Date(Date.UTC(2020, 0, 1))
    expect(buildIsoImage(files, {label: 'cidata', date}).equals(buildIsoImage(files, {label: 'cidata', date}))).toBe(true)
  })
})
