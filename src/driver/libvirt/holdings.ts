import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {writeFileAtomic} from '../../state/atomic-file.js'
import {acquireFileLock} from '../../state/file-lock.js'
import {ensureStateDir} from '../../state/private-dir.js'
import {vmPaths} from '../../state/paths.js'

/**
 * vm's account of the box volumes it uploaded to libvirt hosts: which host (URI), pool and
 * volume hold a copy of which box. `vm box remove` names them (it never touches remote hosts);
 * the file is written atomically under a lock, so parallel ups never lose an entry.
 */
export interface HeldVolume {
  uri: string
  pool: string
  volume: string
  box: {name: string; version: string; architecture: string; provider: string}
  /** What the volume holds: a box disk, or the box's kernel or initrd. */
  role: 'disk' | 'kernel' | 'initrd'
}

const FILE = 'libvirt-volumes.json'

function holdingsFile(env: NodeJS.ProcessEnv): string {
  return path.join(vmPaths(env).data, FILE)
}

export async function readHoldings(env: NodeJS.ProcessEnv = process.env): Promise<HeldVolume[]> {
  try {
    const data = JSON.parse(await readFile(holdingsFile(env), 'utf8')) as {volumes?: unknown}
    return Array.isArray(data.volumes) ? (data.volumes as HeldVolume[]) : []
  } catch {
    return []
  }
}

/** Adds `held` (once: the same host, pool and volume is one entry). */
export async function recordHolding(held: HeldVolume, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const file = holdingsFile(env)
  await ensureStateDir(path.dirname(file))
  const release = await acquireFileLock(`${file}.lock`)
  try {
    const volumes = (await readHoldings(env)).filter(
      (entry) => !(entry.uri === held.uri && entry.pool === held.pool && entry.volume === held.volume),
    )
    volumes.push(held)
    await writeFileAtomic(file, `${JSON.stringify({volumes}, null, 2)}\n`, {mode: 0o600})
  } finally {
    await release()
  }
}

/** The libvirt hosts holding a copy of a box, as "still held on HOST (pool P, volume V)" lines. */
export async function hostsHoldingBox(
  box: {name: string; version: string; architecture: string; provider: string},
  env: NodeJS.ProcessEnv = process.env,
): Promise<HeldVolume[]> {
  return (await readHoldings(env)).filter(
    (entry) =>
      entry.box.name === box.name &&
      entry.box.version === box.version &&
      entry.box.architecture === box.architecture &&
      entry.box.provider === box.provider,
  )
}
