import {existsSync} from 'node:fs'
import {open, rm} from 'node:fs/promises'

import {ExternalError} from '../../errors/errors.js'
import {runProgram} from '../../process/run.js'
import {shellQuote} from '../../provision/shell.js'
import type {CreatedMachine, EngineSnapshot, SnapshotOperations} from '../driver.js'
import {diskNodeName, INCOMING_FD} from './args.js'
import {qemuPaths, type QemuPaths} from './files.js'
import {findMachineProcess, type MachineProcess} from './machine-process.js'
import {runJob, waitForMigration, withQmp, type QmpClient} from './qmp.js'

/**
 * Snapshots are qcow2 internal snapshots in the machine's overlays: they live and die with its
 * disks (vm destroy removes them) and need no other file. A running machine's are taken and
 * loaded by its QEMU (QMP snapshot jobs, memory included, in the first disk); a halted one's by
 * qemu-img (disks only).
 */

const QEMU_IMG_HINT = 'Install qemu-utils (apt-get install qemu-utils).'

function pathsOf(machine: CreatedMachine): QemuPaths {
  return qemuPaths(machine.dir, machine.id)
}

function disksOf(machine: CreatedMachine): string[] {
  const paths = pathsOf(machine)
  return machine.record.box.disks.map((_disk, index) => paths.overlay(index))
}

interface ImageInfo {
  'virtual-size': number
  snapshots?: Array<{name: string; 'vm-state-size': number; 'date-sec': number; 'date-nsec': number}>
}

/** `qemu-img info` of a disk; -U (shared) so that it also reads the disk of a running machine. */
async function imageInfo(disk: string): Promise<ImageInfo> {
  const {stdout} = await runProgram('qemu-img', ['info', '-U', '--output=json', disk], {missingHint: QEMU_IMG_HINT, timeoutMs: 60_000})
  return JSON.parse(stdout) as ImageInfo
}

/** The snapshots `qemu-img info --output=json` lists, as the engine reports them. */
export function parseSnapshots(info: ImageInfo): EngineSnapshot[] {
  return (info.snapshots ?? []).map((snapshot) => ({
    name: snapshot.name,
    memoryBytes: snapshot['vm-state-size'],
    createdAt: new Date(snapshot['date-sec'] * 1000 + Math.floor(snapshot['date-nsec'] / 1e6)).toISOString(),
  }))
}

function runningQemu(machine: CreatedMachine): MachineProcess & {qmpSocket: string} {
  const found = findMachineProcess(pathsOf(machine).process)
  if (found?.qmpSocket === undefined)
    throw new ExternalError(`Machine ${machine.name}'s QEMU is not running or has no QMP socket`, 'qemu', [], '', {
      hint: `Check "vm status ${machine.name}" and try again.`,
    })
  return {...found, qmpSocket: found.qmpSocket}
}

/** Runs one QMP snapshot job on the machine's QEMU; QEMU's refusal becomes an ExternalError with its reason. */
async function qmpJob(machine: CreatedMachine, what: string, command: string, args: Record<string, unknown>): Promise<void> {
  const qemu = runningQemu(machine)
  const devices = machine.record.box.disks.map((_disk, index) => diskNodeName(index))
  try {
    await withQmp(qemu.qmpSocket, (client) => runJob(client, command, {'job-id': `vm-${command}-${process.pid}`, devices, ...args}))
  } catch (error) {
    throw new ExternalError(`QEMU could not ${what}: ${(error as Error).message}`, 'qemu', [command], (error as Error).message, {
      hint: `See "vm snapshot list ${machine.name}".`,
    })
  }
}

async function qemuImgSnapshot(machine: CreatedMachine, flag: '-a' | '-c' | '-d', name: string): Promise<void> {
  for (const disk of disksOf(machine))
    await runProgram('qemu-img', ['snapshot', flag, name, disk], {missingHint: QEMU_IMG_HINT, timeoutMs: 600_000})
}

export const qemuSnapshots: SnapshotOperations = {
  async list(machine) {
    return parseSnapshots(await imageInfo(disksOf(machine)[0]!))
  },

  async save(machine, name, running) {
    if (running) await qmpJob(machine, `save snapshot ${name}`, 'snapshot-save', {tag: name, vmstate: diskNodeName(0)})
    else await qemuImgSnapshot(machine, '-c', name)
  },

  async restore(machine, name, running) {
    if (running) await qmpJob(machine, `restore snapshot ${name}`, 'snapshot-load', {tag: name, vmstate: diskNodeName(0)})
    else await qemuImgSnapshot(machine, '-a', name)
  },

  async delete(machine, name, running) {
    if (running) await qmpJob(machine, `delete snapshot ${name}`, 'snapshot-delete', {tag: name})
    else await qemuImgSnapshot(machine, '-d', name)
  },

  async diskSizes(machine) {
    return Promise.all(disksOf(machine).map(async (disk) => (await imageInfo(disk))['virtual-size']))
  },
}

/**
 * The shell command QEMU's exec: migration writes the state to: the stream as QEMU sends it,
 * uncompressed (it already leaves out pages that hold only zeros, so its size is the memory the
 * guest uses). A resume waits for the whole stream to be read before the guest may continue,
 * and decompressing it was the slowest part of that wait (zstd read 80 MiB of a tiny guest in
 * about as long as QEMU took to load it, more for a larger guest); it also spares the suspend
 * the compression. The writer runs detached from the shell QEMU starts (QEMU kills that shell
 * when the migration ends, maybe before everything is written); it renames its output into
 * place only once complete, so the state file exists only whole.
 */
export function saveCommand(file: string): string {
  const partial = shellQuote(`${file}.partial`)
  return `umask 077; exec 3<&0; (cat <&3 >${partial} && mv -f ${partial} ${shellQuote(file)}) >/dev/null 2>&1 &`
}

/** How a state file that earlier versions of vm compressed starts (QEMU's own stream starts "QEVM"). */
const STATE_MAGIC = {zstd: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), gzip: Buffer.from([0x1f, 0x8b])}

/** How a resuming QEMU reads its saved state: the -incoming URI and, for `fd:`, the file it is passed. */
export interface Incoming {
  incoming: string
  incomingFile?: string | undefined
}

/**
 * How a state file is read back: QEMU's stream as it is from the file itself, opened by vm and
 * inherited on descriptor INCOMING_FD (no reader process, no pipe that copies every byte once
 * more and hands QEMU 64 KiB at a time: a resume waits for the whole stream, so this is most of
 * its wait); or decompressed through exec: (a state saved compressed by an earlier version of
 * vm, zstd or gzip, by its magic).
 */
export async function incomingFrom(file: string): Promise<Incoming> {
  const handle = await open(file, 'r')
  const magic = Buffer.alloc(4)
  try {
    await handle.read(magic, 0, 4, 0)
  } finally {
    await handle.close()
  }
  const reader = magic.equals(STATE_MAGIC.zstd) ? 'zstd -q -dc' : magic.subarray(0, 2).equals(STATE_MAGIC.gzip) ? 'gzip -dc' : undefined
  // QEMU's own stream ("QEVM"); anything else QEMU refuses with its reason.
  if (reader === undefined) return {incoming: `fd:${INCOMING_FD}`, incomingFile: file}
  // exec: the shell QEMU starts needs not stay between the reader and QEMU.
  return {incoming: `exec:exec ${reader} ${shellQuote(file)}`}
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Saves the running machine's state into `file` and leaves its QEMU paused, ready to quit:
 * the guest is stopped, then migrated into the compressor. On failure the guest runs on.
 */
export async function saveRunningState(machine: CreatedMachine, file: string): Promise<void> {
  const qemu = runningQemu(machine)
  await rm(`${file}.partial`, {force: true})
  await rm(file, {force: true})
  await withQmp(qemu.qmpSocket, async (client: QmpClient) => {
    await client.execute('stop')
    try {
      // QEMU's default cap of 128 MiB/s makes a local save twice as slow as it need be.
      await client.execute('migrate-set-parameters', {'max-bandwidth': 10 * 1024 ** 3})
      await client.execute('migrate', {uri: `exec:${saveCommand(file)}`})
      await waitForMigration(client, 600_000)
    } catch (error) {
      await client.execute('cont').catch(() => undefined)
      throw new ExternalError(
        `QEMU could not save machine ${machine.name}'s state: ${(error as Error).message}`,
        'qemu',
        ['migrate'],
        (error as Error).message,
        {
          hint: 'The machine runs on; nothing was saved.',
        },
      )
    }
  })
  const deadline = Date.now() + 120_000
  while (!existsSync(file)) {
    if (Date.now() > deadline) {
      await withQmp(qemu.qmpSocket, (client) => client.execute('cont')).catch(() => undefined)
      throw new ExternalError(`The saved state of machine ${machine.name} was not written within 120 s`, 'zstd', [], '', {
        hint: 'The machine runs on; check free space in its directory.',
      })
    }
    await sleep(50)
  }
}
