import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {QCOW2_HEADER_BYTES, qcow2Facts} from '../../src/box/oci/qcow2-facts.js'
import {parseDiskFacts} from '../../src/box/verify.js'

/**
 * The in-process reading of a pulled qcow2 header must say what `qemu-img info` says for the
 * plain images it answers, and answer nothing (so that qemu-img is asked) for every image that
 * reaches outside itself or that it does not fully understand. Images are made by qemu-img.
 */
let dir: string

function image(name: string, args: string[], size?: string): string {
  const file = path.join(dir, name)
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args, file, ...(size === undefined ? [] : [size])])
  return file
}

function ours(file: string) {
  const bytes = readFileSync(file)
  return qcow2Facts(bytes.subarray(0, QCOW2_HEADER_BYTES), statSync(file).size)
}

function qemuImg(file: string) {
  return parseDiskFacts(execFileSync('qemu-img', ['info', '--output=json', file]).toString())
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vm-qcow2-facts-'))
})
afterAll(() => {
  rmSync(dir, {recursive: true, force: true})
})

describe('qcow2 facts from the header', () => {
  it('agrees with qemu-img info on plain images (v2, v3, zstd, extended L2, small clusters, written data)', () => {
    const raw = path.join(dir, 'data.raw')
    writeFileSync(raw, Buffer.alloc(3 << 20, 0xab))
    const converted = path.join(dir, 'converted.qcow2')
    execFileSync('qemu-img', ['convert', '-q', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, converted])
    const files = [
      image('v3.qcow2', ['-o', 'compat=1.1'], '10G'),
      image('v2.qcow2', ['-o', 'compat=0.10'], '1G'),
      image('zstd.qcow2', ['-o', 'compression_type=zstd'], '2G'),
      image('l2.qcow2', ['-o', 'extended_l2=on,cluster_size=128k'], '5G'),
      image('small.qcow2', ['-o', 'cluster_size=4096'], '100M'),
      image('odd.qcow2', [], '12345678'),
      converted,
    ]
    for (const file of files) {
      const facts = ours(file)
      expect(facts, path.basename(file)).toBeDefined()
      expect(facts, path.basename(file)).toEqual(qemuImg(file))
    }
  })

  it('answers nothing for backing files, external data files, encryption, other formats and damaged headers', () => {
    const base = image('base.qcow2', [], '1G')
    const backed = image('backed.qcow2', ['-b', base, '-F', 'qcow2'])
    expect(qemuImg(backed).externalFile).toBe(base)
    expect(ours(backed)).toBeUndefined()

    const withData = image('with-data.qcow2', ['-o', `data_file=${path.join(dir, 'external.raw')}`], '1G')
    expect(qemuImg(withData).externalFile).toBeDefined()
    expect(ours(withData)).toBeUndefined()

    const secret = path.join(dir, 'secret')
    writeFileSync(secret, 'passphrase')
    const encrypted = path.join(dir, 'encrypted.qcow2')
    execFileSync('qemu-img', [
      'create',
      '-q',
      '--object',
      `secret,id=sec0,file=${secret}`,
      '-f',
      'qcow2',
      '-o',
      'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=200',
      encrypted,
      '64M',
    ])
    expect(ours(encrypted)).toBeUndefined()

    const raw = path.join(dir, 'plain.raw')
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, '1M'])
    expect(ours(raw)).toBeUndefined()

    const plain = readFileSync(image('damaged.qcow2', [], '1G'))
    const header = plain.subarray(0, QCOW2_HEADER_BYTES)
    expect(qcow2Facts(header, plain.length)).toBeDefined()
    const unknownFeature = Buffer.from(header)
    unknownFeature.writeBigUInt64BE(1n << 7n, 72)
    expect(qcow2Facts(unknownFeature, plain.length)).toBeUndefined()
    const dirty = Buffer.from(header)
    dirty.writeBigUInt64BE(1n, 72)
    expect(qcow2Facts(dirty, plain.length)).toBeUndefined()
    const l1Outside = Buffer.from(header)
    l1Outside.writeBigUInt64BE(BigInt(plain.length) * 4n, 40)
    expect(qcow2Facts(l1Outside, plain.length)).toBeUndefined()
    expect(qcow2Facts(header.subarray(0, 40), plain.length)).toBeUndefined()
  })
})
