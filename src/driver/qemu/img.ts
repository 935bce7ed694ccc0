// qemu-img info has one owner: src/box/verify.ts (box checks); this module only makes overlays.
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
