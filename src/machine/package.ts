import {copyFile, link, mkdir, mkdtemp, open, readFile, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {refuseExistingOutput, writeBoxArchive, type BoxArchiveResult} from '../box/archive-write.js'
import {qcow2VirtualSize} from '../box/disk-signature.js'
import type {StopMethod, Stopped} from '../driver/driver.js'
import {driverOf} from '../driver/registry.js'
import {InternalError, stderrOf, UsageError, UserError} from '../errors/errors.js'
import {runInGuest} from '../ssh/exec.js'
import {closeMaster, liveMaster} from '../ssh/master.js'
import {insecureKeyPairs} from '../ssh/keys.js'
import {machinePaths, type MachinePaths} from '../state/machine-files.js'
import type {MachineEvents} from './events.js'
import {createdMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {
  archiveFiles,
  defaultVagrantfile,
  FILESYSTEMS_LINE,
  guestPrepareScript,
  HOST_KEYS_LINE,
  includeEntries,
  PACKAGED_DISK,
  packageMetadata,
} from './package-contents.js'
import {writeRecord, type MachineRecord} from './record.js'
import {firstBootUnfinished} from './stages.js'
import {loginUser, machineKeys, sshTarget} from './ssh-target.js'

export interface PackageOptions {
  /** The .box file to write (relative to cwd); default package.box, as Vagrant's. */
  output?: string | undefined
  /** The Vagrantfile to ship instead of the default one. */
  vagrantfile?: string | undefined
  /** Files shipped in the box under include/. */
  include?: string[] | undefined
  force?: boolean | undefined
  cwd: string
  /** Seconds the guest gets to power off. */
  haltTimeout?: number | undefined
}

export interface PackageResult {
  machine: string
  file: string
  size: number
  sha256: string
  /** GB, as metadata.json says. */
  virtualSize: number
  /** The box boots its kernel directly (kernel and initrd are in the archive). */
  kernel: boolean
  /** removed: machines made from the box make their own; kept: the guest has no way to make them. */
  hostKeys: 'kept' | 'removed'
  /** The packaged machine is left powered off; its next vm up replaces the key again and pins the new host key. */
  state: 'poweroff'
  /**
   * How the machine was stopped: quit (QEMU stopped at once, the guest's filesystems synced and
   * read-only first), or acpi (powered off, when the guest could not make them read-only).
   */
  halt: StopMethod
  /** Milliseconds per step; archive counts only what was left to write after the export. */
  timings: {prepare: number; halt: number; export: number; archive: number}
}

const DEFAULT_OUTPUT = 'package.box'

async function regularFile(file: string, flag: string): Promise<void> {
  const info = await stat(file).catch(() => undefined)
  if (info === undefined || !info.isFile())
    throw new UsageError(`${flag} ${file}: ${info === undefined ? 'no such file' : 'not a regular file'}`, {
      hint: `Give ${flag} an existing file.`,
    })
}

/**
 * The public keys the package trusts for its first login: the keys the box trusted before the
 * machine's own key replaced them. With insert_key: false they were never replaced (undefined:
 * leave authorized_keys alone); with ssh.private_key_path, those keys' .pub files; otherwise the
 * insecure keys vm offers on a first login (vm's own and Vagrant's), whichever the box came with.
 */
async function boxPublicKeys(record: MachineRecord): Promise<string[] | undefined> {
  // A cloud image trusted no key: its machines get theirs from their own cloud-init seed.
  if (record.cloudInit !== undefined) return []
  if (record.ssh?.loginKeys !== undefined) return undefined
  const configured = record.config.ssh.privateKeyPaths
  const files = configured?.map((key) => `${key}.pub`) ?? insecureKeyPairs().map((pair) => pair.publicKey)
  const keys: string[] = []
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => {
      throw new UserError(`Cannot read ${file}, the public half of a key the box trusted`, {
        code: 'KEY_MISSING',
        hint: 'vm package puts the box\'s first-login key back: keep each ssh.private_key_path key\'s ".pub" file next to it.',
      })
    })
    keys.push(...text.split('\n').filter((line) => line.trim() !== ''))
  }
  return keys
}

/** Refuses what cannot be packaged before anything is changed. */
async function checkPackageable(projectDir: string, name: string): Promise<MachineRecord> {
  const {status, record, driver} = await createdMachine(projectDir, name, ', then package it')
  if (driver.features.exportDisk !== true || driver.exportDisk === undefined)
    throw new UserError(`Machine ${name} runs on the "${driver.name}" engine, which cannot package machines (it declares no disk export)`, {
      code: 'UNSUPPORTED',
      hint: 'vm package works with engines that can export a disk (qemu); nothing was changed.',
    })
  if (record.box.disks.length !== 1)
    throw new UserError(`Machine ${name} has ${record.box.disks.length} disks; vm package packages machines with one disk`, {
      code: 'UNSUPPORTED',
    })
  if (status.state !== 'running' || record.ssh === undefined)
    throw new UserError(`Machine ${name} is not running (state: ${status.state}); packaging prepares the guest over SSH first`, {
      code: 'NOT_RUNNING',
      hint: `Run "vm up ${name}", then "vm package ${name}".`,
    })
  if (firstBootUnfinished(record))
    throw new UserError(`Machine ${name}'s first boot did not finish`, {code: 'BOOT_UNFINISHED', hint: `Run "vm up ${name}" to finish it.`})
  return record
}

/**
 * After the guest was (or may have been) prepared: the record stops claiming the machine's own
 * key is in place and forgets the pinned host key, so the next vm up logs in with the box's keys,
 * pins the new host key and puts a new key of the machine's own in (or, if the guest was never
 * changed, finds the machine's key still works). A cloud-init machine keeps its key: its seed
 * gives it back when cloud-init runs again at the next boot, which then pins the new host key.
 */
async function forgetMachineKeys(paths: MachinePaths, record: MachineRecord): Promise<MachineRecord> {
  const updated: MachineRecord = record.cloudInit !== undefined ? record : {...record, ssh: {...record.ssh!, keyReplaced: false}}
  await writeRecord(paths.record, updated)
  await rm(paths.knownHosts, {force: true})
  return updated
}

/** The box's kernel and initrd go into the archive as they are: a hard link when the store is on the same filesystem. */
async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await link(source, target)
  } catch {
    await copyFile(source, target)
  }
}

/** The virtual size of a qcow2 disk, from its header (no qemu-img run needed); `what` says whose disk it is. */
async function qcow2DiskSize(file: string, what: string): Promise<number> {
  const handle = await open(file, 'r')
  try {
    const {buffer, bytesRead} = await handle.read(Buffer.alloc(32), 0, 32, 0)
    const size = qcow2VirtualSize(buffer.subarray(0, bytesRead))
    if (size === undefined) throw new InternalError(`${what} ${file} is not a qcow2 image`)
    return size
  } finally {
    await handle.close()
  }
}

/** The box's metadata.json for a disk of `diskBytes` (only virtual_size depends on the disk). */
function metadataFor(record: MachineRecord, diskBytes: number): Record<string, unknown> {
  return packageMetadata({
    box: record.box,
    diskBytes,
    boxVirtualSize: record.box.virtualSize,
    sshUser: record.ssh?.user ?? loginUser(record),
    cloudInit: record.cloudInit !== undefined,
  })
}

function since(start: number): number {
  return Math.round(performance.now() - start)
}

/**
 * Runs the guest script (guestPrepareScript) in one SSH session and returns what it printed and
 * the record as it now stands: whatever happened, the record no longer claims the machine's own
 * key is in place (forgetMachineKeys); once the script succeeded, that key is deleted. The session
 * uses the machine's shared connection only when one is open already: opening a master for a
 * single session costs more than it saves (and the guest is stopped right after).
 */
async function prepareGuest(
  name: string,
  record: MachineRecord,
  paths: MachinePaths,
  publicKeys: string[] | undefined,
): Promise<{output: string; record: MachineRecord}> {
  const target = sshTarget(record, paths, machineKeys(record, paths), 'yes')
  let output: string
  try {
    ;({stdout: output} = await runInGuest(target, 'sh -s', {
      input: guestPrepareScript(publicKeys, record.cloudInit !== undefined, target.user === 'root'),
      connectTimeout: 5,
      timeoutMs: 120_000,
      // Once the guest says its filesystems are read-only (or cannot be), nothing it does after
      // matters: the session's end (sudo, the login shell, the SSH channel) is not waited for.
      finalLine: FILESYSTEMS_LINE,
      shared: (await liveMaster(target)) !== undefined,
    }))
  } catch (error) {
    const said = stderrOf(error).trim().split('\n').at(-1) ?? ''
    throw new UserError(`Could not prepare machine ${name} for packaging${said === '' ? '' : `: ${said}`}`, {
      code: 'PACKAGE_PREPARE_FAILED',
      cause: error,
      hint: `The login user needs passwordless sudo. The machine still runs; "vm up ${name}" gives it back a key of its own (nothing was packaged).`,
    })
  } finally {
    record = await forgetMachineKeys(paths, record)
  }
  if (record.ssh?.loginKeys === undefined && record.cloudInit === undefined) {
    await rm(paths.privateKey, {force: true})
    await rm(`${paths.privateKey}.pub`, {force: true})
  }
  return {output, record}
}

/**
 * vm package: prepares the running guest in one SSH session (the box's keys back, the machine's
 * own key, SSH host keys and machine-id gone, its filesystems synced and read-only), stops it,
 * exports its disk flattened and compressed, and writes a libvirt box (metadata.json, kernel
 * and initrd when the box boots directly, Vagrantfile, include/..., box.img): all but the disk
 * compressed and written meanwhile, the disk last, stored as exported (its clusters are
 * compressed already). The machine stays powered off, its record truthful.
 */
export async function packageMachine(
  projectDir: string,
  name: string,
  options: PackageOptions,
  events: MachineEvents,
): Promise<PackageResult> {
  const file = path.resolve(options.cwd, options.output ?? DEFAULT_OUTPUT)
  refuseExistingOutput(file, options.force)
  if (options.vagrantfile !== undefined) await regularFile(path.resolve(options.cwd, options.vagrantfile), '--vagrantfile')
  const includes = includeEntries((options.include ?? []).map((include) => path.resolve(options.cwd, include)))
  for (const include of includes) await regularFile(include.source, '--include')
  const outputDir = await stat(path.dirname(file)).catch(() => undefined)
  if (outputDir === undefined || !outputDir.isDirectory())
    throw new UsageError(`Cannot write ${file}: ${path.dirname(file)} is not a directory`, {
      hint: 'Give --output a file in an existing directory.',
    })

  const paths = machinePaths(projectDir, name)
  const unlock = await lockMachine(paths.lock, name)
  let staging: string | undefined
  let archive: Promise<BoxArchiveResult> | undefined
  let diskReady: {resolve: () => void; reject: (error: unknown) => void} | undefined
  let closing: Promise<void> | undefined
  try {
    let record = await checkPackageable(projectDir, name)
    const driver = await driverOf(record)
    const publicKeys = await boxPublicKeys(record)
    const machine = (current: MachineRecord) => ({name, dir: paths.dir, id: current.id, record: current})

    // What can fail before the guest is changed is done first: the staging directory (the
    // output's directory is writable) and the disk's virtual size (metadata.json).
    staging = await mkdtemp(path.join(path.dirname(file), '.vm-package-'))
    const diskBytes = await qcow2DiskSize(driver.diskFiles({dir: paths.dir}, 1)[0]!, `Machine ${name}'s disk`)
    const metadata = metadataFor(record, diskBytes)

    // The guest is prepared at once: the files that precede the disk in the archive (metadata.json,
    // kernel, initrd, Vagrantfile, includes) are staged and compressed meanwhile, and the disk,
    // last, is written once exported.
    events.info('Preparing the guest (box key back, host keys and machine-id removed, filesystems read-only)')
    let start = performance.now()
    const preparing = prepareGuest(name, record, paths, publicKeys)
    preparing.catch(() => undefined)
    try {
      await writeFile(path.join(staging, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`)
      if (typeof metadata.kernel === 'string') await linkOrCopy(record.box.kernel!, path.join(staging, metadata.kernel))
      if (typeof metadata.initrd === 'string') await linkOrCopy(record.box.initrd!, path.join(staging, metadata.initrd))
      if (options.vagrantfile === undefined) await writeFile(path.join(staging, 'Vagrantfile'), defaultVagrantfile(metadata))
      else await copyFile(path.resolve(options.cwd, options.vagrantfile), path.join(staging, 'Vagrantfile'))
      if (includes.length > 0) {
        await mkdir(path.join(staging, 'include'))
        for (const include of includes) await copyFile(include.source, path.join(staging, include.entry))
      }
      const ready = new Promise<void>((resolve, reject) => (diskReady = {resolve, reject}))
      archive = writeBoxArchive({
        dir: staging,
        files: archiveFiles(metadata, includes),
        file,
        compression: 'zstd',
        stored: [PACKAGED_DISK],
        later: {files: [PACKAGED_DISK], ready},
      })
      archive.catch(() => undefined)
    } catch (error) {
      // The record says what the guest's preparation changed before this fails.
      await preparing.catch(() => undefined)
      throw error
    }
    const prepared = await preparing
    const output = prepared.output
    record = prepared.record
    const hostKeys = HOST_KEYS_LINE.exec(output)?.[1] === 'removed' ? 'removed' : 'kept'
    if (hostKeys === 'kept')
      events.warn(
        "The guest makes no SSH host keys at boot (neither dropbear -R nor systemd with OpenSSH): the box keeps this machine's host keys",
      )
    const readOnly = FILESYSTEMS_LINE.exec(output)?.[1] === 'read-only'
    const prepareMs = since(start)

    start = performance.now()
    let stopped: Stopped
    if (readOnly) {
      // Every filesystem on its disks is synced, clean and read-only: nothing is lost by stopping QEMU now.
      events.info('Stopping the machine (its filesystems are synced and read-only)')
      stopped = await driver.stop(machine(record), 0)
    } else {
      events.info('Powering off (the guest could not make its filesystems read-only)')
      stopped = await driver.stop(machine(record), (options.haltTimeout ?? 60) * 1000)
      if (stopped.method !== 'acpi' && stopped.method !== 'already-stopped')
        events.warn(`The guest did not power off by itself (${stopped.method}); its disk was synced before, but check the box`)
    }
    record = {...(stopped.record ?? record), lastState: 'poweroff', pending: undefined}
    await writeRecord(paths.record, record)
    const haltMs = since(start)

    events.info('Exporting the disk (flattened, compressed)')
    start = performance.now()
    // The shared connection ended with the guest: its master is told to go meanwhile.
    closing = closeMaster(record.id)
    const exported = path.join(staging, PACKAGED_DISK)
    await driver.exportDisk!(machine(record), exported)
    const exportedBytes = await qcow2DiskSize(exported, 'The exported disk')
    if (exportedBytes !== diskBytes)
      throw new InternalError(
        `The exported disk holds ${exportedBytes} bytes, the machine's disk ${diskBytes}: metadata.json would be wrong`,
      )
    const exportMs = since(start)

    start = performance.now()
    events.info(`Writing ${file}`)
    diskReady!.resolve()
    const written = await archive
    await closing
    return {
      machine: name,
      ...written,
      virtualSize: metadata.virtual_size as number,
      kernel: typeof metadata.kernel === 'string',
      hostKeys,
      state: 'poweroff',
      halt: stopped.method,
      timings: {prepare: prepareMs, halt: haltMs, export: exportMs, archive: since(start)},
    }
  } catch (error) {
    // The archive stops and removes what it wrote.
    diskReady?.reject(error)
    await archive?.catch(() => undefined)
    await closing
    throw error
  } finally {
    if (staging !== undefined) await rm(staging, {recursive: true, force: true})
    await unlock()
  }
}
