import {existsSync} from 'node:fs'
import {mkdir, readdir, rm} from 'node:fs/promises'
import path from 'node:path'

import {machineIdReferenced, recordBoxUse} from '../box/references.js'
import type {MachineDriver} from '../driver/driver.js'
import {machineMac} from '../network/mac.js'
import {addToIndex, listIndex, readIndex} from '../state/global-index.js'
import {machineId, machinePaths, type MachinePaths} from '../state/machine-files.js'
import type {MachineConfig} from '../vmfile/types.js'
import {resolveBox} from './box.js'
import {writeMachineSeed} from './cloud-init.js'
import type {MachineEvents} from './events.js'
import {readRecord, writeRecord, type MachineRecord} from './record.js'

/** Stage "prepare": the box resolved, the machine's disks made on it, the machine recorded. */

/** The parts of the config that only take effect on a new boot. */
export function bootRelevant(config: MachineConfig): string {
  const {provision: _provision, primary: _primary, autostart: _autostart, ...rest} = config
  return JSON.stringify(rest)
}

/**
 * The id of a machine being created: a hash of its project directory and name, unless another
 * machine already answers to that id (one whose project was moved away from this directory,
 * or one removed without "vm destroy"): then a variant, so that runtime files, leases, taps,
 * the index entry and the box store's reference of the two never mix.
 */
export async function newMachineId(projectDir: string, name: string): Promise<string> {
  const {machines} = await readIndex()
  const known = new Set(machines.map((entry) => entry.id))
  for (let variant = 0; ; variant++) {
    const id = machineId(projectDir, variant === 0 ? name : `${name}\0${variant}`)
    if (!known.has(id) && !(await machineIdReferenced(id))) return id
  }
}

/** MACs of every other machine on this host, so a new machine's MACs never clash with them. */
async function takenMacs(id: string): Promise<Set<string>> {
  const taken = new Set<string>()
  const {live} = await listIndex()
  for (const entry of live) {
    if (entry.id === id) continue
    const other = await readRecord(machinePaths(entry.projectDir, entry.name).record).catch(() => undefined)
    for (const mac of other?.macs ?? []) taken.add(mac.toLowerCase())
  }
  return taken
}

/**
 * One MAC per NIC: a MAC the Vmfile sets wins, then the one recorded for the NIC, then a stable
 * one derived from the machine id that no other machine here has. NICs added to the Vmfile
 * since the machine was created (vm reload) get theirs; other machines' records are only read
 * when a MAC has to be made.
 */
export async function macsFor(id: string, networks: MachineConfig['networks'], recorded: readonly string[]): Promise<string[]> {
  const settled =
    recorded.length > networks.length &&
    networks.every((network, index) => network.mac === undefined || network.mac === recorded[index + 1])
  if (settled) return [...recorded]
  const taken = await takenMacs(id)
  for (const mac of recorded) taken.add(mac)
  const macs: string[] = []
  for (let index = 0; index <= networks.length; index++) {
    const mac = networks[index - 1]?.mac ?? recorded[index] ?? machineMac(id, index, taken)
    macs.push(mac)
    taken.add(mac)
  }
  return macs
}

/**
 * The size of a new machine's first disk, in MiB: the larger of the Vmfile's disk and the
 * box's virtual_size (GB = GiB, as vagrant-libvirt reads it); undefined keeps the box disk's size.
 */
export function firstDiskMiB(configDisk: number | undefined, virtualSizeGB: number | undefined): number | undefined {
  const boxMiB = virtualSizeGB === undefined ? undefined : Math.ceil(virtualSizeGB * 1024)
  if (configDisk === undefined) return boxMiB
  return boxMiB === undefined ? configDisk : Math.max(configDisk, boxMiB)
}

/** Creates a machine: its box pinned, its disks made by `driver`, its record and index entry written. */
export async function createMachine(
  projectDir: string,
  config: MachineConfig,
  paths: MachinePaths,
  driver: MachineDriver,
  events: MachineEvents,
): Promise<MachineRecord> {
  const box = await resolveBox(config, projectDir, events)
  await mkdir(paths.dir, {recursive: true})
  const id = await newMachineId(projectDir, config.name)
  const now = new Date().toISOString()
  const record: MachineRecord = {
    format: 1,
    id,
    name: config.name,
    projectDir,
    driver: driver.name,
    createdAt: now,
    box,
    config,
    macs: await macsFor(id, config.networks, []),
    lastState: 'poweroff',
    updatedAt: now,
  }
  // The store records the machine as the box's user before its disks exist (box remove checks it).
  const disks = driver.diskFiles(paths, box.disks.length)
  await recordBoxUse(box, {id, name: config.name, projectDir, overlays: disks}, () =>
    driver.createDisks({name: config.name, dir: paths.dir, id, record}, firstDiskMiB(config.disk, box.virtualSize)),
  )
  if (box.cloudInit === true) record.cloudInit = await writeMachineSeed(record, paths)
  else if (config.cloudInit !== undefined)
    events.warn(`cloud_init is ignored: box ${box.name} is not a cloud image (only bare disk images added with "vm box add --name" are)`)
  await writeRecord(paths.record, record)
  await addToIndex({id, name: config.name, projectDir})
  return record
}

/** The directories on the way to `dir` that do not exist yet, deepest first. */
export function missingDirs(dir: string): string[] {
  const missing: string[] = []
  for (let current = path.resolve(dir); !existsSync(current); current = path.dirname(current)) {
    missing.push(current)
    if (path.dirname(current) === current) break
  }
  return missing
}

/** Removes what a failed creation left in the machine directory, but the lock (still held). */
export async function clearMachineDir(paths: MachinePaths): Promise<void> {
  for (const entry of await readdir(paths.dir).catch(() => [] as string[]))
    if (path.join(paths.dir, entry) !== paths.lock) await rm(path.join(paths.dir, entry), {recursive: true, force: true})
}
