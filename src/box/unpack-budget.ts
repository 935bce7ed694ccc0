import {statfs} from 'node:fs/promises'

import {UserError} from '../errors/errors.js'
import {formatBytes} from '../cli/progress.js'
import {quoteValue} from './fields.js'

/**
 * How much unpacking a box may write. Three bounds, each checked before every write so that a
 * small archive that expands without end (an archive bomb) stops early:
 *
 * - free space: the filesystem holding the store keeps FREE_MARGIN_MAX (1 GiB) or, on a small
 *   filesystem, 5% of its size free; re-measured every 16 MiB, as others write too;
 * - what the box declares: with metadata.json's virtual_size V (GiB, per disk), at most
 *   disks x 1.25 x V + 1 GiB (a disk never takes more than its virtual size plus a little
 *   qcow2 metadata, under 2%; the 1 GiB covers kernels, initrds and small files), and a qcow2
 *   image at most 1.25 x the virtual size in its own header + 64 MiB;
 * - before metadata.json is read, at most 1 GiB of files that are not qcow2 images (a qcow2
 *   image is bounded by its header; a large raw disk needs metadata.json first);
 * - a ceiling for any box, 256 GiB unless VM_BOX_MAX_UNPACKED says otherwise: far above real
 *   boxes (a few GiB, tens at most), and the only bound left for a raw disk whose box declares
 *   no size on a large, empty filesystem.
 */
const MiB = 1 << 20
const GiB = 1 << 30
export const DEFAULT_MAX_UNPACKED = 256 * GiB
export const FREE_MARGIN_MAX = GiB
export const DECLARED_FACTOR = 1.25
export const EXTRA_FILES_ALLOWANCE = GiB
export const QCOW2_SLACK = 64 * MiB
const RECHECK_EVERY = 16 * MiB

export interface FreeSpace {
  /** Bytes an unprivileged writer may still use. */
  available: number
  /** Size of the filesystem. */
  size: number
}

export interface UnpackLimits {
  /** The ceiling for any box (bytes). */
  maxBytes?: number | undefined
  /** Measures free space (tests inject a figure). */
  freeSpace?: ((dir: string) => Promise<FreeSpace>) | undefined
}

export async function measureFreeSpace(dir: string): Promise<FreeSpace> {
  const stats = await statfs(dir)
  return {available: stats.bavail * stats.bsize, size: stats.blocks * stats.bsize}
}

/** Free space to leave on a filesystem of `size` bytes. */
export function freeMargin(size: number): number {
  return Math.min(FREE_MARGIN_MAX, Math.ceil(size * 0.05))
}

/** The most a box may unpack to when its metadata declares `virtualSizeGb` for `disks` disks. */
export function declaredLimit(virtualSizeGb: number, disks: number): number {
  return Math.max(1, disks) * Math.ceil(virtualSizeGb * GiB * DECLARED_FACTOR) + EXTRA_FILES_ALLOWANCE
}

/** The most a qcow2 file whose header declares `virtualSize` bytes may take. */
export function qcow2Limit(virtualSize: number): number {
  return Math.ceil(virtualSize * DECLARED_FACTOR) + QCOW2_SLACK
}

/** Parses VM_BOX_MAX_UNPACKED: bytes, or a number with K, M, G or T (binary units). */
export function parseByteSize(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$/i.exec(text)
  if (match === null) {
    throw new UserError(`VM_BOX_MAX_UNPACKED is "${text}", not a size`, {
      code: 'CONFIG_INVALID',
      hint: 'Give bytes or a size such as 512M, 100G or 1T.',
    })
  }
  const power = ['', 'K', 'M', 'G', 'T'].indexOf((match[2] ?? '').toUpperCase())
  return Math.floor(Number(match[1]) * 1024 ** power)
}

function tooBig(where: string, limit: number, reason: string): UserError {
  return new UserError(`Stopped unpacking ${where}: it unpacks to more than ${formatBytes(limit)}, ${reason}`, {
    code: 'BOX_TOO_BIG',
    hint: 'The archive is damaged or hostile (an archive bomb); ask its publisher. If the box is genuine, set VM_BOX_MAX_UNPACKED higher or fix its metadata.json virtual_size.',
    data: {limit},
  })
}

/** Counts what one unpacking writes against the bounds above. */
export class UnpackBudget {
  written = 0
  private sinceCheck = 0
  private undeclared = 0
  private declared: {limit: number; reason: string} | undefined

  private constructor(
    private readonly dir: string,
    private readonly where: string,
    private readonly ceiling: number,
    private readonly margin: number,
    private readonly freeAtStart: number,
    private readonly measure: (dir: string) => Promise<FreeSpace>,
  ) {}

  /** Measures the free space of the filesystem holding `dir`. */
  static async start(dir: string, where: string, limits: UnpackLimits = {}): Promise<UnpackBudget> {
    const measure = limits.freeSpace ?? measureFreeSpace
    const free = await measure(dir)
    return new UnpackBudget(dir, where, limits.maxBytes ?? DEFAULT_MAX_UNPACKED, freeMargin(free.size), free.available, measure)
  }

  private noSpace(available: number): UserError {
    return new UserError(
      `Stopped unpacking ${this.where}: it would leave less than ${formatBytes(this.margin)} free on the filesystem of ${this.dir} (${formatBytes(available)} free)`,
      {
        code: 'DISK_FULL',
        hint: 'Free some space (vm box prune removes boxes no machine uses), or keep boxes on a bigger filesystem (VM_BOXES_DIR), then run the command again.',
        data: {path: this.dir, available, margin: this.margin},
      },
    )
  }

  /** Bounds the whole box by what its metadata declares; throws when already past it. */
  declare(limit: number, reason: string): void {
    if (this.declared === undefined || limit < this.declared.limit) this.declared = {limit, reason}
    this.check(0)
  }

  /** Throws when writing `bytes` more would pass a bound. */
  check(bytes: number): void {
    const total = this.written + bytes
    if (total > this.freeAtStart - this.margin) throw this.noSpace(Math.max(0, this.freeAtStart - this.written))
    if (this.declared !== undefined && total > this.declared.limit) throw tooBig(this.where, this.declared.limit, this.declared.reason)
    if (total > this.ceiling) throw tooBig(this.where, this.ceiling, 'the limit for any box (VM_BOX_MAX_UNPACKED)')
  }

  /** Checks, then counts `bytes` about to be written; re-measures free space now and then. */
  async take(bytes: number): Promise<void> {
    this.check(bytes)
    this.written += bytes
    this.sinceCheck += bytes
    if (this.sinceCheck >= RECHECK_EVERY) {
      this.sinceCheck = 0
      const free = await this.measure(this.dir)
      if (free.available < this.margin) throw this.noSpace(free.available)
    }
  }

  /**
   * Counts bytes of a file that is not a qcow2 image, unpacked before metadata.json has said
   * what the box holds: at most EXTRA_FILES_ALLOWANCE in all (kernels, initrds, small files),
   * so a box whose metadata comes last cannot fill the disk with one huge file first.
   */
  takeUndeclared(bytes: number, file: string): void {
    this.checkUndeclared(bytes, file)
    this.undeclared += bytes
  }

  /** Throws when `bytes` more of such files would pass the allowance. */
  checkUndeclared(bytes: number, file: string): void {
    if (this.undeclared + bytes > EXTRA_FILES_ALLOWANCE) {
      throw new UserError(
        `Stopped unpacking ${this.where}: before its metadata.json it holds more than ${formatBytes(EXTRA_FILES_ALLOWANCE)} of files that are not qcow2 images (${quoteValue(file)} is one)`,
        {
          code: 'BOX_TOO_BIG',
          hint: 'The archive is damaged or hostile (an archive bomb); ask its publisher. A box with a large raw disk must put metadata.json, with virtual_size, first in the archive.',
          data: {limit: EXTRA_FILES_ALLOWANCE},
        },
      )
    }
  }

  /** A bound for one file (a qcow2 image by its own header). */
  static fileLimitError(where: string, file: string, limit: number, virtualSize: number): UserError {
    return tooBig(
      where,
      limit,
      `the most the qcow2 image ${file} may take for the virtual size of ${formatBytes(virtualSize)} in its header`,
    )
  }
}

/** The declared bound for a box from its metadata, when it declares a virtual size. */
export function declaredBound(metadata: {virtualSize: number | undefined; disks: unknown[]}): {limit: number; reason: string} | undefined {
  if (metadata.virtualSize === undefined) return undefined
  const disks = Math.max(1, metadata.disks.length)
  return {
    limit: declaredLimit(metadata.virtualSize, disks),
    reason: `the most its metadata.json allows (virtual_size ${metadata.virtualSize} GB for ${disks} disk${disks === 1 ? '' : 's'}, x${DECLARED_FACTOR}, plus ${formatBytes(EXTRA_FILES_ALLOWANCE)} for other files)`,
  }
}
