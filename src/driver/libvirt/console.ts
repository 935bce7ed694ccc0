import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {tailLines} from '../../process/run.js'
import {writePlacement, type HostFile, type Placement} from './placement.js'
import {failureOf, virshBinary, type Virsh} from './virsh.js'
import {volumePath} from './volumes.js'

/*
 * The serial console and the NoCloud seed of a domain on a remote libvirt host, which cannot
 * read or write this host's files: both are volumes of the machine in its pool.
 *
 * - The console's log: libvirt's virtlogd writes the domain's serial output into a file of the
 *   pool (a volume made for it, `<log file=...>`), and vm reads it back with `vol-download`
 *   over the same URI (vm console --log, the boot progress line, a failed boot's evidence).
 * - The interactive console: `virsh -c URI console DOMAIN` (Ctrl-] detaches, as vm console's
 *   own socket client does), for local and remote domains alike.
 * - A cloud image's seed ISO: uploaded once into a volume, attached as the domain's CD-ROM.
 *
 * Each volume is named after the machine id (vm-ID-...), recorded in the placement, and removed
 * with the machine (destroy).
 */

export const consoleLogVolume = (id: string): string => `vm-${id}-serial.log`
export const seedVolume = (id: string): string => `vm-${id}-cidata.iso`

/** Makes an empty volume (a file of a dir pool) unless it exists; returns its path on the host. */
async function makeVolume(virsh: Virsh, pool: string, volume: string, bytes: number): Promise<string> {
  await virsh.runUnless('volume-exists', ['vol-create-as', pool, volume, String(bytes), '--format', 'raw'], {
    doing: `create volume ${volume}`,
    pool,
  })
  return volumePath(virsh, pool, volume)
}

/**
 * The log file of a remote domain's serial console, as the host sees it: made once per machine
 * (recorded in the placement, which is written here). A pool whose volumes are no files
 * (LVM, say) cannot hold it: undefined, and the domain has no log, as before.
 */
export async function remoteConsoleLog(
  virsh: Virsh,
  placement: Placement,
  machine: {dir: string; id: string},
  warn: (text: string) => void,
): Promise<string | undefined> {
  if (placement.consoleLog !== undefined) return placement.consoleLog.path
  const volume = consoleLogVolume(machine.id)
  try {
    const file = await makeVolume(virsh, placement.pool, volume, 0)
    placement.consoleLog = {volume, path: file}
    await writePlacement(machine.dir, placement)
    return file
  } catch (error) {
    if (failureOf(error) === undefined) throw error
    warn(`the serial console of this machine is not logged: ${(error as Error).message}`)
    return undefined
  }
}

/** What the remote domain's console printed since it last started ('' when nothing or no log). */
export async function readRemoteConsoleLog(virsh: Virsh, placement: Placement): Promise<string> {
  if (placement.consoleLog === undefined) return ''
  const dir = await mkdtemp(path.join(tmpdir(), 'vm-console-'))
  try {
    const file = path.join(dir, 'serial.log')
    const done = await virsh.runUnless('volume-missing', ['vol-download', '--pool', placement.pool, placement.consoleLog.volume, file], {
      doing: `read the serial console log of domain ${placement.domain}`,
      pool: placement.pool,
    })
    return done === undefined ? '' : await readFile(file, 'utf8').catch(() => '')
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

/** The last `lines` lines of the remote domain's console log. */
export async function remoteConsoleTail(virsh: Virsh, placement: Placement, lines: number): Promise<string> {
  return tailLines((await readRemoteConsoleLog(virsh, placement)).replaceAll('\r', ''), lines)
}

/**
 * The machine's NoCloud seed where a remote host can read it: uploaded once into a volume
 * (the seed is written when the machine is created and never changes), recorded in the
 * placement. Returns its path on the host.
 */
export async function remoteSeed(virsh: Virsh, placement: Placement, machine: {dir: string; id: string}, seed: string): Promise<string> {
  if (placement.seed !== undefined) return placement.seed.path
  const volume = seedVolume(machine.id)
  // Made (or found from an attempt that failed before the placement was written), then filled.
  const file = await makeVolume(virsh, placement.pool, volume, (await stat(seed)).size)
  await virsh.run(['vol-upload', '--pool', placement.pool, volume, seed], {
    doing: `upload the cloud-init seed ${seed} into volume ${volume}`,
    pool: placement.pool,
  })
  const seedFile: HostFile = {volume, path: file}
  placement.seed = seedFile
  await writePlacement(machine.dir, placement)
  return seedFile.path
}

/** The machine's own volumes besides its disks (the console log, the seed), for destroy. */
export function extraVolumes(placement: Placement): string[] {
  return [placement.consoleLog?.volume, placement.seed?.volume].filter((volume): volume is string => volume !== undefined)
}

/** The program that joins this terminal to the domain's serial console (Ctrl-] detaches). */
export function consoleAttachCommand(placement: Placement): {program: string; args: string[]} {
  return {program: virshBinary(), args: ['-c', placement.uri, 'console', placement.domain]}
}
