import {chmod} from 'node:fs/promises'

import {runProgram} from '../../process/run.js'

/** The fields of `qemu-img info --output=json` that vm uses. */
export interface ImageInfo {
  format: string
  virtualSize: number
  actualSize: number | undefined
  backingFile: string | undefined
}

/** Parses `qemu-img info --output=json` output. */
export function parseImageInfo(json: string): ImageInfo {
  const info = JSON.parse(json) as {format: string; 'virtual-size': number; 'actual-size'?: number; 'backing-filename'?: string}
  return {format: info.format, virtualSize: info['virtual-size'], actualSize: info['actual-size'], backingFile: info['backing-filename']}
}

export async function imageInfo(file: string): Promise<ImageInfo> {
  const {stdout} = await runProgram('qemu-img', ['info', '--output=json', file], {
    missingHint: 'Install qemu-utils (apt-get install qemu-utils).',
  })
  return parseImageInfo(stdout)
}

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
