// qemu-img info has one owner: src/box/verify.ts (box checks); this module makes and exports disks.
import {chmod} from 'node:fs/promises'

import {runProgram} from '../../process/run.js'

/**
 * Creates a qcow2 overlay on a base disk: constant time whatever the base's size; the base
 * is only read. `sizeMiB`, when larger than the base, grows the overlay's virtual disk.
 * The overlay holds the guest's data: it is private (0600) whatever the umask.
 */
export async function createOverlay(base: string, baseFormat: string, overlay: string, sizeMiB?: number): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-F', baseFormat, '-b', base, overlay]
  if (sizeMiB !== undefined) args.push(`${sizeMiB}M`)
  await runProgram('qemu-img', args, {missingHint: 'Install qemu-utils (apt-get install qemu-utils).'})
  await chmod(overlay, 0o600)
}

/**
 * The options of a flattened, compressed export: qcow2 with zstd-compressed clusters (QEMU
 * 5.1+ reads them; vm's own boxes use them) is ~4x faster to write than zlib at about the same
 * size; -W lets the conversion write clusters out of order, which keeps both cores busy.
 */
export function exportArgs(source: string, target: string): string[] {
  return ['convert', '-q', '-W', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', source, target]
}

/**
 * Writes `source` with everything its backing chain holds into one self-contained compressed
 * qcow2 at `target` (internal snapshots are not carried over). The source must not be in use.
 */
export async function exportFlatDisk(source: string, target: string): Promise<void> {
  await runProgram('qemu-img', exportArgs(source, target), {missingHint: 'Install qemu-utils (apt-get install qemu-utils).'})
}
