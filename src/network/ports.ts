import {mkdir, open, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import path from 'node:path'

/** The default range for SSH ports forwarded from 127.0.0.1 to guests, as Vagrant's. */
export const SSH_PORT_RANGE: readonly [number, number] = [2200, 2299]

/** VNC displays 0-99 on 127.0.0.1 (port 5900 + display). */
export const VNC_PORT_RANGE: readonly [number, number] = [5900, 5999]

interface Lease {
  pid: number
  owner: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Whether nothing listens on host:port right now (we can bind it). */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({port, host, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

async function readLease(file: string): Promise<Lease | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Lease
  } catch {
    return undefined
  }
}

/**
 * Takes a port in `range` that no other lease holds and nothing listens on. A lease is a file
 * created exclusively (O_EXCL) in `leaseDir`, so machines starting at the same moment never
 * get the same port; a lease whose holder process is gone is taken over.
 */
export async function leasePort(
  leaseDir: string,
  owner: string,
  range: readonly [number, number] = SSH_PORT_RANGE,
  skip: ReadonlySet<number> = new Set(),
): Promise<number> {
  await mkdir(leaseDir, {recursive: true})
  for (let port = range[0]; port <= range[1]; port++) {
    if (skip.has(port)) continue
    const file = path.join(leaseDir, `${port}.lease`)
    const existing = await readLease(file)
    if (existing !== undefined) {
      if (existing.owner === owner && existing.pid === process.pid) continue
      if (alive(existing.pid)) continue
      await rm(file, {force: true})
    }
    try {
      const handle = await open(file, 'wx')
      await handle.writeFile(JSON.stringify({pid: process.pid, owner} satisfies Lease))
      await handle.close()
    } catch {
      continue // another process took it first
    }
    if (await portIsFree(port)) return port
    await rm(file, {force: true})
  }
  throw new Error(`no free port between ${range[0]} and ${range[1]} on 127.0.0.1`)
}

/** Hands a lease to the process that now holds the port (QEMU), so it lives as long as it. */
export async function transferLease(leaseDir: string, port: number, owner: string, pid: number): Promise<void> {
  await writeFile(path.join(leaseDir, `${port}.lease`), JSON.stringify({pid, owner} satisfies Lease))
}

export async function releaseLease(leaseDir: string, port: number, owner: string): Promise<void> {
  const file = path.join(leaseDir, `${port}.lease`)
  const lease = await readLease(file)
  if (lease?.owner === owner) await rm(file, {force: true})
}
