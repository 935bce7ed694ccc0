import {describe, expect, it} from 'vitest'

import {identifyImage, qcow2VirtualSize} from '../../src/box/disk-signature.js'
import {declaredLimit, freeMargin, parseByteSize, qcow2Limit, UnpackBudget, type FreeSpace} from '../../src/box/unpack-budget.js'
import {VmError} from '../../src/errors/errors.js'

const MiB = 1 << 20
const GiB = 1 << 30

function caught(run: () => unknown): VmError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(VmError)
    return error as VmError
  }
  throw new Error('expected an error')
}

describe('unpacking is bounded', () => {
  it('derives its bounds from the filesystem and the metadata', () => {
    expect(freeMargin(100 * GiB)).toBe(GiB)
    expect(freeMargin(64 * MiB)).toBe(Math.ceil(64 * MiB * 0.05))
    expect(declaredLimit(2, 1)).toBe(2.5 * GiB + GiB)
    expect(declaredLimit(10, 2)).toBe(25 * GiB + GiB)
    expect(qcow2Limit(GiB)).toBe(1.25 * GiB + 64 * MiB)
    expect(parseByteSize('512M')).toBe(512 * MiB)
    expect(parseByteSize('2GiB')).toBe(2 * GiB)
    expect(parseByteSize('1000')).toBe(1000)
    expect(parseByteSize(undefined)).toBeUndefined()
    expect(() => parseByteSize('lots')).toThrow(/VM_BOX_MAX_UNPACKED/)
  })

  it('stops at the free space left above the margin, measured at the start (injected figure)', async () => {
    const freeSpace = async (): Promise<FreeSpace> => ({available: 100 * MiB, size: 1000 * MiB})
    const budget = await UnpackBudget.start('/store', 'box.box', {freeSpace})
    await budget.take(40 * MiB)
    expect(() => budget.check(10 * MiB)).not.toThrow()
    const error = caught(() => budget.check(20 * MiB))
    expect(error.code).toBe('DISK_FULL')
    expect(error.message).toContain('it would leave less than 50.0 MiB free on the filesystem of /store')
  })

  it('re-measures free space as it goes, since others write too', async () => {
    let available = 10 * GiB
    const budget = await UnpackBudget.start('/store', 'box.box', {freeSpace: async () => ({available, size: 100 * GiB})})
    await budget.take(8 * MiB)
    available = 900 * MiB
    await expect(budget.take(8 * MiB)).rejects.toMatchObject({code: 'DISK_FULL'})
  })

  it('keeps to the ceiling and to what the metadata declares, whichever is lower', async () => {
    const freeSpace = async (): Promise<FreeSpace> => ({available: 1000 * GiB, size: 2000 * GiB})
    const budget = await UnpackBudget.start('/store', 'box.box', {freeSpace, maxBytes: 3 * GiB})
    expect(caught(() => budget.check(4 * GiB)).message).toContain('the limit for any box (VM_BOX_MAX_UNPACKED)')
    budget.declare(GiB, 'what metadata.json allows')
    expect(caught(() => budget.check(GiB + 1)).message).toContain('it unpacks to more than 1.0 GiB, what metadata.json allows')
    await budget.take(GiB)
    const late = await UnpackBudget.start('/store', 'box.box', {freeSpace})
    await late.take(2 * GiB)
    expect(caught(() => late.declare(GiB, 'what metadata.json allows')).code).toBe('BOX_TOO_BIG')
    expect(caught(() => late.checkUndeclared(GiB + 1, 'box.img')).message).toContain('before its metadata.json')
  })
})

describe('a bare image must be recognizably a disk', () => {
  const sized = (size: number, writes: Array<[number, string | number[]]>) => {
    const buffer = Buffer.alloc(size)
    for (const [offset, data] of writes) (typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data)).copy(buffer, offset)
    return buffer
  }

  it('knows disks by their signatures', () => {
    const qcow2 = sized(512, [[0, [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]]])
    qcow2.writeBigUInt64BE(10n * BigInt(GiB), 24)
    expect(qcow2VirtualSize(qcow2)).toBe(10 * GiB)
    expect(identifyImage(qcow2)).toMatchObject({disk: true, format: 'qcow2', virtualSize: 10 * GiB})
    for (const [head, what] of [
      [sized(4096, [[510, [0x55, 0xaa]]]), 'partition table or boot sector'],
      [sized(4096, [[512, 'EFI PART']]), 'GPT'],
      [sized(4096, [[0x438, [0x53, 0xef]]]), 'ext2/3/4'],
      [sized(4096, [[0, 'XFSB']]), 'XFS'],
      [sized(0x10048, [[0x10040, '_BHRfS_M']]), 'btrfs'],
      [sized(0x8800, [[0x8001, 'CD001']]), 'ISO 9660'],
    ] as const)
      expect(identifyImage(head)).toMatchObject({disk: true, format: 'raw', what: expect.stringContaining(what)})
  })

  it('says what anything else looks like', () => {
    const tarHead = Buffer.alloc(200)
    tarHead.write('metadata.json', 0)
    tarHead.write('0000644\0', 100)
    for (const [head, what] of [
      [Buffer.alloc(0), 'empty'],
      [Buffer.from('<!doctype html><html>'), 'an HTML page'],
      [Buffer.from('\uFEFF  <HTML lang="en">'), 'an HTML page'],
      [tarHead, 'the start of a tar archive, cut short'],
      [Buffer.from('{"name": "x"}'), 'JSON text'],
      [Buffer.from('hello\nworld\n'), 'text'],
      [Buffer.from([0x1f, 0x8b, 8, 0]), 'gzip-compressed data (compressed twice?)'],
      [Buffer.from('\u007fELF\u0002\u0001'), 'an ELF executable'],
      [Buffer.from('KDMV\u0001\u0000'), 'a VMDK image'],
      [Buffer.alloc(4096), 'zero bytes only'],
      [Buffer.from([0x01, 0x02, 0x03, 0x00, 0xff]), 'data of an unknown kind'],
    ] as const)
      expect(identifyImage(head).what, what).toContain(what)
  })
})
