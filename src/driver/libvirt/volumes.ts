import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {UserError} from '../../errors/errors.js'
import type {PinnedBox} from '../../machine/record.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import {vmPaths} from '../../state/paths.js'
import {recordHolding, type HeldVolume} from './holdings.js'
import {failureOf, type Virsh} from './virsh.js'

/** A box file's content digest (sha256, hex): box volumes are named by it. */
export async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** The cache subdirectory of box file digests. */
export const DIGEST_CACHE_SUBDIR = 'libvirt-digests'

/** What identifies a file's content without reading it: the same inode, size and change times. */
async function fileIdentity(file: string): Promise<string> {
  const stats = await stat(path.resolve(file), {bigint: true})
  return [stats.dev, stats.ino, stats.size, stats.mtimeNs, stats.ctimeNs].join(':')
}

/**
 * fileDigest, remembered: a box file in the store is never changed after `vm box add`, so its
 * digest is read once and kept in vm's cache with the file's identity (device, inode, size,
 * modification and change times); any change to the file reads it again. Hashing a large box
 * disk took seconds on every machine created from it.
 */
export async function boxFileDigest(file: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const absolute = path.resolve(file)
  const dir = path.join(vmPaths(env).cache, DIGEST_CACHE_SUBDIR)
  const entry = path.join(dir, `${createHash('sha256').update(absolute).digest('hex').slice(0, 32)}.json`)
  const identity = await fileIdentity(absolute)
  try {
    const cached = JSON.parse(await readFile(entry, 'utf8')) as {file?: unknown; identity?: unknown; sha256?: unknown}
    if (
      cached.file === absolute &&
      cached.identity === identity &&
      typeof cached.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(cached.sha256)
    )
      return cached.sha256
  } catch {
    // Not cached yet (or unreadable): read the file.
  }
  const digest = await fileDigest(absolute)
  // Changed while it was read: the digest is right for no identity worth keeping.
  if ((await fileIdentity(absolute)) !== identity) return digest
  try {
    await mkdir(dir, {recursive: true, mode: 0o700})
    await writeFileAtomic(entry, `${JSON.stringify({file: absolute, identity, sha256: digest})}\n`)
  } catch {
    // A cache that cannot be written only costs the next machine a read of the file.
  }
  return digest
}

/** The volume that holds a box file on a host: named by its content, so two boxes or versions never clash. */
export function boxVolumeName(digest: string, role: HeldVolume['role'], format: 'qcow2' | 'raw'): string {
  const base = `vmbox-${digest.slice(0, 32)}`
  return role === 'disk' ? `${base}.${format}` : `${base}.${role}`
}

/** The marker created once a box volume's upload is complete (libvirt has no volume rename). */
export function readyMarkerName(volume: string): string {
  return `${volume}.ready`
}

/** A machine's own volume: disk `index`, backed by the box volume. */
export function machineVolumeName(id: string, index: number): string {
  return `vm-${id}-disk${index}.qcow2`
}

async function volumeExists(virsh: Virsh, pool: string, volume: string): Promise<boolean> {
  const found = await virsh.runUnless('volume-missing', ['vol-info', '--pool', pool, volume], {doing: `look up volume ${volume}`, pool})
  return found !== undefined
}

/** One upload per host, pool and volume at a time in this process (parallel ups of one box wait for it). */
const uploads = new Map<string, Promise<void>>()

/** How long a vm waits for another one's upload of the same box volume to finish. */
const UPLOAD_WAIT_MS = 15 * 60_000

/**
 * Makes sure `pool` on the host holds `file` as volume `volume`, uploading it once: the volume
 * is created exclusively (vol-create-as fails when it exists), uploaded, then marked complete
 * by a second, empty volume (NAME.ready). Whoever creates the volume uploads it; any other vm,
 * on this host or another, finds the volume and waits for the marker. A failed upload removes
 * its volume again; one killed mid-way leaves a volume without marker, which the wait names.
 */
export async function ensureUploaded(virsh: Virsh, pool: string, file: string, volume: string, format: 'qcow2' | 'raw'): Promise<boolean> {
  const key = `${virsh.host.uri}\0${pool}\0${volume}`
  const running = uploads.get(key)
  if (running !== undefined) {
    await running
    return false
  }
  let uploaded = false
  const task = (async () => {
    const marker = readyMarkerName(volume)
    if (await volumeExists(virsh, pool, marker)) return
    const size = (await stat(file)).size
    try {
      await virsh.run(['vol-create-as', pool, volume, String(size), '--format', format], {doing: `create volume ${volume}`, pool})
    } catch (error) {
      if (failureOf(error) !== 'volume-exists') throw error
      await waitForMarker(virsh, pool, volume, marker)
      return
    }
    try {
      await virsh.run(['vol-upload', '--pool', pool, volume, file], {
        doing: `upload ${file} into volume ${volume}`,
        pool,
        timeoutMs: 60 * 60_000,
      })
      await virsh.run(['vol-create-as', pool, marker, '0', '--format', 'raw'], {doing: `mark volume ${volume} complete`, pool})
      uploaded = true
    } catch (error) {
      await virsh
        .run(['vol-delete', '--pool', pool, volume], {doing: `remove the incomplete volume ${volume}`, pool})
        .catch(() => undefined)
      throw error
    }
  })()
  uploads.set(key, task)
  try {
    await task
  } finally {
    uploads.delete(key)
  }
  return uploaded
}

async function waitForMarker(virsh: Virsh, pool: string, volume: string, marker: string): Promise<void> {
  const deadline = Date.now() + UPLOAD_WAIT_MS
  while (Date.now() < deadline) {
    if (await volumeExists(virsh, pool, marker)) return
    if (!(await volumeExists(virsh, pool, volume)))
      throw new UserError(`The upload of box volume ${volume} to ${virsh.host.label} failed elsewhere; run the command again`)
    await sleep(1000)
  }
  throw new UserError(
    `Box volume ${volume} in pool ${pool} on ${virsh.host.label} is incomplete: its upload did not finish within ${UPLOAD_WAIT_MS / 60_000} minutes`,
    {
      code: 'LIBVIRT_VOLUME_INCOMPLETE',
      hint: `If no other vm is uploading it (an upload was killed), remove it: virsh -c ${virsh.host.uri} vol-delete --pool ${pool} ${volume}`,
    },
  )
}

/** The box volumes of a machine's box on a host: each disk, and the kernel and initrd when the daemon cannot read this host's files. */
export interface BoxVolumes {
  disks: Array<{volume: string; format: 'qcow2' | 'raw'}>
  /** Paths as the libvirt host sees them. */
  kernel: string | undefined
  initrd: string | undefined
}

/** Uploads what the host lacks of `box` into `pool` and records which host now holds it. */
export async function ensureBoxVolumes(virsh: Virsh, pool: string, box: PinnedBox): Promise<BoxVolumes> {
  const key = {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider}
  const place = async (file: string, role: HeldVolume['role'], format: 'qcow2' | 'raw'): Promise<string> => {
    const volume = boxVolumeName(await boxFileDigest(file), role, format)
    await ensureUploaded(virsh, pool, file, volume, format)
    await recordHolding({uri: virsh.host.uri, pool, volume, box: key, role})
    return volume
  }
  const remotePath = async (file: string | undefined, role: 'kernel' | 'initrd'): Promise<string | undefined> =>
    file === undefined ? undefined : volumePath(virsh, pool, await place(file, role, 'raw'))
  // The box's files go up side by side (one connection to the host carries them all); each
  // upload finishes or cleans up after itself before a failure of another is reported.
  const disks = box.disks.map(async (disk) => ({volume: await place(disk.path, 'disk', disk.format), format: disk.format}))
  const kernel = virsh.host.local ? Promise.resolve(box.kernel) : remotePath(box.kernel, 'kernel')
  const initrd = virsh.host.local ? Promise.resolve(box.initrd) : remotePath(box.initrd, 'initrd')
  const settled = await Promise.allSettled([...disks, kernel, initrd])
  const failed = settled.find((result) => result.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return {disks: await Promise.all(disks), kernel: await kernel, initrd: await initrd}
}

export async function volumePath(virsh: Virsh, pool: string, volume: string): Promise<string> {
  const {stdout} = await virsh.run(['vol-path', '--pool', pool, volume], {doing: `find volume ${volume}`, pool})
  return stdout.trim()
}

/** A volume's capacity in bytes (vol-info --bytes). */
export async function volumeCapacity(virsh: Virsh, pool: string, volume: string): Promise<number> {
  const {stdout} = await virsh.run(['vol-info', '--bytes', '--pool', pool, volume], {doing: `read volume ${volume}`, pool})
  const match = /^Capacity:\s+(\d+)\s+bytes/m.exec(stdout)
  return match === null ? 0 : Number(match[1])
}

/** Removes a volume; one that is gone already is fine. */
export async function deleteVolume(virsh: Virsh, pool: string, volume: string): Promise<void> {
  await virsh.runUnless('volume-missing', ['vol-delete', '--pool', pool, volume], {doing: `remove volume ${volume}`, pool})
}
