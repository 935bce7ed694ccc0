import {existsSync} from 'node:fs'
import {mkdir, readdir, rm, rmdir} from 'node:fs/promises'
import path from 'node:path'

import {stderrOf, UserError, VmError} from '../errors/errors.js'
import {startQemu, stopQemu} from '../driver/qemu/process.js'
import {createOverlay} from '../driver/qemu/img.js'
import type {MachineSpec, NicSpec} from '../driver/qemu/spec.js'
import {machineMac} from '../network/mac.js'
import {releaseForwards, resolveForwards} from '../network/forwards.js'
import {leasePort, releaseLease, transferLease, VNC_PORT_RANGE} from '../network/ports.js'
import {runProgram} from '../process/run.js'
import {generateKeyPair, insecurePrivateKey} from '../ssh/keys.js'
import type {SshTarget} from '../ssh/options.js'
import {sshArgs} from '../ssh/options.js'
import {waitForSsh} from '../ssh/wait.js'
import {machineIdReferenced, recordBoxUse} from '../box/references.js'
import {addToIndex, readIndex} from '../state/global-index.js'
import {machineId, machinePaths, type MachinePaths} from '../state/machine-files.js'
import {findMachineProcess, isMachineProcess, readPidfile} from '../state/process-check.js'
import {ensureRuntimeDir} from '../state/private-dir.js'
import type {MachineConfig} from '../vmfile/types.js'
import {resolveBox} from './box.js'
import {hostFacts, selectAccelerator} from './host.js'
import {inspectMachine} from './inspect.js'
import {lockMachine} from './lock.js'
import {startWithLeasedPorts} from './leased-start.js'
import {provisionRecord} from './provision.js'
import {sharesFor, syncFolders} from '../sync/folders.js'
import {bridgeHelperError} from '../network/bridge.js'
import {listIndex} from '../state/global-index.js'
import {attachNetworks, configureGuestNetworks, detachNetworks, nicMac} from './networks.js'
import {readRecord, writeRecord, type MachineRecord} from './record.js'
import {adoptMovedProject} from './moved.js'
import {describeStages, finishStage, firstBootUnfinished, stagesForBoot, unfinishedStages, type BootStage} from './stages.js'
import type {Interruption} from '../process/interrupt.js'

export interface MachineEvents {
  info(text: string): void
  warn(text: string): void
  /** The last line of the boot log while waiting for SSH. */
  progress?(text: string): void
  /** A line of provisioner output. */
  output?(stream: 'stderr' | 'stdout', line: string): void
}

/** Provisioning after a boot (or on a running machine with --provision). */
async function provisionAfterBoot(
  projectDir: string,
  record: MachineRecord,
  config: MachineConfig,
  options: UpOptions,
  events: MachineEvents,
): Promise<{record: MachineRecord; ran: string[]}> {
  if (options.provision === false) return {record, ran: []}
  const forced = options.provision === true || (options.provisionWith !== undefined && options.provisionWith.length > 0)
  const trigger = forced ? 'forced' : record.provisioned === true ? 'up' : 'first'
  return provisionRecord(projectDir, record, config.provision, trigger, options.provisionWith, events)
}

export interface UpResult {
  name: string
  state: 'running'
  alreadyRunning: boolean
  created: boolean
  box: {name: string; version: string}
  accel: string | undefined
  ssh: {host: string; port: number; user: string} | undefined
  bootMs: number | undefined
  /** Names of the provisioners that ran. */
  provisioned: string[]
}

/** The parts of the config that only take effect on a new boot. */
function bootRelevant(config: MachineConfig): string {
  const {provision: _provision, primary: _primary, autostart: _autostart, ...rest} = config
  return JSON.stringify(rest)
}

export function sshTarget(record: MachineRecord, paths: MachinePaths, identityFile: string, strict: 'accept-new' | 'yes'): SshTarget {
  return {
    host: record.ssh?.host ?? '127.0.0.1',
    port: record.ssh?.port ?? 0,
    user: record.ssh?.user ?? record.config.ssh.user ?? record.box.sshUser ?? 'vm',
    identityFile,
    knownHostsFile: paths.knownHosts,
    hostKeyAlias: `vm-${record.id}`,
    strictHostKeyChecking: strict,
    forwardAgent: record.config.ssh.forwardAgent,
  }
}

async function createMachine(
  projectDir: string,
  config: MachineConfig,
  paths: MachinePaths,
  events: MachineEvents,
): Promise<MachineRecord> {
  const box = await resolveBox(config, projectDir, events)
  await mkdir(paths.dir, {recursive: true})
  const id = await newMachineId(projectDir, config.name)
  // The store records the machine as the box's user before the overlays exist (box remove checks it).
  const overlays = box.disks.map((_, index) => paths.overlay(index))
  await recordBoxUse(box, {id, name: config.name, projectDir, overlays}, async () => {
    for (const [index, disk] of box.disks.entries()) {
      await createOverlay(disk.path, disk.format, paths.overlay(index), index === 0 ? config.disk : undefined)
    }
  })
  const macs = await macsFor(id, config.networks, [])
  const now = new Date().toISOString()
  const record: MachineRecord = {
    format: 1,
    id,
    name: config.name,
    projectDir,
    createdAt: now,
    box,
    config,
    macs,
    lastState: 'poweroff',
    updatedAt: now,
  }
  await writeRecord(paths.record, record)
  await addToIndex({id, name: config.name, projectDir})
  return record
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
async function macsFor(id: string, networks: MachineConfig['networks'], recorded: readonly string[]): Promise<string[]> {
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

function buildSpec(record: MachineRecord, paths: MachinePaths, accel: 'kvm' | 'tcg', sshPort: number, extraNics: NicSpec[]): MachineSpec {
  const config = record.config
  const forwards = [
    {protocol: 'tcp' as const, hostIp: '127.0.0.1', hostPort: sshPort, guestPort: config.ssh.port},
    ...(record.forwards ?? []).map((port) => ({protocol: port.protocol, hostIp: port.hostIp, hostPort: port.host, guestPort: port.guest})),
  ]
  return {
    name: config.name,
    cpus: config.cpus,
    memoryMiB: config.memory,
    accel,
    disks: record.box.disks.map((disk, index) => ({path: paths.overlay(index), format: 'qcow2' as const})),
    kernel:
      record.box.kernel === undefined
        ? undefined
        : {kernel: record.box.kernel, initrd: record.box.initrd, cmdline: record.box.cmdline, firmware: record.box.firmware},
    nics: [{kind: 'user', mac: nicMac(record, 0), forwards}, ...extraNics],
    shares: sharesFor(config.syncedFolders),
    vncDisplay: record.vncDisplay,
    files: {pidfile: paths.pid, qmpSocket: paths.qmpSocket, serialLog: paths.serialLog},
  }
}

/**
 * Replaces the insecure key the box trusts with a key pair made for this machine; synced to
 * the guest's disk at once, so a machine killed right after its first boot still takes the key.
 */
async function replaceInsecureKey(record: MachineRecord, paths: MachinePaths, insecureKey: string, signal?: AbortSignal): Promise<void> {
  const publicKey = await generateKeyPair(paths.privateKey, `vmfile ${record.name} ${record.id}`)
  const script = `umask 077 && mkdir -p ~/.ssh && printf '%s\\n' '${publicKey}' > ~/.ssh/authorized_keys.new && mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys && sync`
  await runProgram('ssh', [...sshArgs(sshTarget(record, paths, insecureKey, 'yes'), {batch: true, connectTimeout: 5}), script], {
    timeoutMs: 30_000,
    signal,
  })
  if (!(await machineKeyWorks(record, paths, signal))) {
    throw new UserError(`Machine ${record.name} did not accept its new key after the insecure key was replaced`, {
      code: 'KEY_REPLACEMENT_FAILED',
      hint: `Run "vm up ${record.name}" again; if it fails again, "vm destroy -f ${record.name}" and recreate the machine.`,
    })
  }
}

/** Whether the guest accepts the machine's own key (the key stage may have finished in the guest only). */
async function machineKeyWorks(record: MachineRecord, paths: MachinePaths, signal?: AbortSignal): Promise<boolean> {
  if (!existsSync(paths.privateKey)) return false
  try {
    await runProgram('ssh', [...sshArgs(sshTarget(record, paths, paths.privateKey, 'yes'), {batch: true, connectTimeout: 5}), 'true'], {
      timeoutMs: 30_000,
      signal,
    })
    return true
  } catch {
    return false
  }
}

/** Boots one machine (creating it first when needed) and waits until SSH answers. */
export interface UpOptions {
  /** Boot with the Vmfile's current settings instead of the recorded ones (vm reload). */
  applyConfig?: boolean
  /** true: run the provisioners (--provision); false: never (--no-provision); default: first up. */
  provision?: boolean | undefined
  /** Only these provisioners (names or types), --provision-with. */
  provisionWith?: string[] | undefined
  /** Ctrl-C and SIGTERM: a boot this call started is undone (or left resumable) when they abort it. */
  interrupt?: Interruption | undefined
}

/** vm up was interrupted (Ctrl-C, SIGTERM). */
export class InterruptedError extends VmError {
  constructor(message: string, hint: string) {
    super(message, {code: 'INTERRUPTED', exit: 'interrupted', hint})
  }
}

function whenAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal === undefined) return
    if (signal.aborted) reject(new Error('aborted'))
    else signal.addEventListener('abort', () => reject(new Error('aborted')), {once: true})
  })
}

/** The directories on the way to `dir` that do not exist yet, deepest first. */
function missingDirs(dir: string): string[] {
  const missing: string[] = []
  for (let current = path.resolve(dir); !existsSync(current); current = path.dirname(current)) {
    missing.push(current)
    if (path.dirname(current) === current) break
  }
  return missing
}

/** Removes what a failed creation left in the machine directory, but the lock (still held). */
async function clearMachineDir(paths: MachinePaths): Promise<void> {
  for (const entry of await readdir(paths.dir).catch(() => [] as string[]))
    if (path.join(paths.dir, entry) !== paths.lock) await rm(path.join(paths.dir, entry), {recursive: true, force: true})
}

interface BootContext {
  projectDir: string
  /** The Vmfile's config (provisioners come from it). */
  config: MachineConfig
  paths: MachinePaths
  record: MachineRecord
  options: UpOptions
  events: MachineEvents
  leases: string
  created: boolean
}

/** Stops a machine whose boot failed or was interrupted before it was safe, and records that truthfully. */
async function stopUnfinished(context: BootContext, record: MachineRecord): Promise<void> {
  const {paths, leases} = context
  await stopQemu(findMachineProcess(paths.process), paths.process, 0)
  if (record.ssh !== undefined) await releaseLease(leases, record.ssh.port, record.id)
  await detachNetworks(record).catch(() => undefined)
  await writeRecord(paths.record, {...record, lastState: 'poweroff', taps: undefined, pending: undefined})
}

/**
 * Runs every unfinished stage of a boot (stages.ts), recording each as it finishes: SSH (the
 * host key recorded), the insecure key replaced, guest networks, synced folders, provisioners.
 * A fresh boot runs them all; a vm up that finds the machine running with stages left runs
 * those. A failure or interruption while SSH or the key is pending stops the machine: the
 * box's insecure key must not stay trusted. Later stages leave it running, to be finished by
 * the next vm up.
 */
async function finishBoot(context: BootContext): Promise<UpResult> {
  const {projectDir, config, paths, options, events} = context
  const signal = options.interrupt?.signal
  let record = context.record
  const todo = unfinishedStages(record)
  let pending = [...todo]
  let bootMs: number | undefined
  let provisioned: string[] = []
  let connecting = todo.includes('ssh') || todo.includes('key')
  const finish = async (stage: BootStage): Promise<void> => {
    signal?.throwIfAborted()
    pending = finishStage(pending, stage)
    record = {...record, pending}
    await writeRecord(paths.record, record)
  }
  const connect = async (): Promise<void> => {
    let key = paths.privateKey
    let insecureCopy: string | undefined
    if (!record.ssh!.keyReplaced) insecureCopy = key = await insecurePrivateKey(paths.dir)
    try {
      const wait = (identity: string): Promise<number> =>
        waitForSsh({
          target: sshTarget(record, paths, identity, record.ssh!.keyReplaced ? 'yes' : 'accept-new'),
          timeoutMs: record.config.bootTimeout * 1000,
          serialLog: paths.serialLog,
          qemuStderr: paths.qemuStderr,
          isAlive: () => isMachineProcess(readPidfile(paths.pid), paths.process),
          onProgress: events.progress,
          signal,
        })
      try {
        bootMs = await wait(key)
      } catch (error) {
        // An interrupted key stage may have replaced the key in the guest but not in the record.
        const refused = error instanceof VmError && error.code === 'SSH_KEY_REFUSED'
        if (!refused || insecureCopy === undefined || !(await machineKeyWorks(record, paths, signal))) throw error
        record = {...record, ssh: {...record.ssh!, keyReplaced: true}}
      }
      await finish('ssh')
      if (!record.ssh!.keyReplaced) await replaceInsecureKey(record, paths, key, signal)
      record = {...record, ssh: {...record.ssh!, keyReplaced: true}}
      await finish('key')
    } finally {
      if (insecureCopy !== undefined) await rm(insecureCopy, {force: true})
    }
  }
  const stages = async (): Promise<void> => {
    if (connecting) await connect()
    connecting = false
    const target = (): SshTarget => sshTarget(record, paths, paths.privateKey, 'yes')
    if (pending.includes('networks')) {
      const nics = await configureGuestNetworks(record, target(), (text) => events.warn(text))
      const addresses = nics.slice(1).flatMap((nic) => (nic.address === undefined ? [] : [`${nic.address} (${nic.type} ${nic.network})`]))
      if (addresses.length > 0) events.info(`networks: ${addresses.join(', ')}`)
      record = {...record, nics}
      await finish('networks')
    }
    if (pending.includes('folders')) {
      await syncFolders(record.config.syncedFolders, target(), (text) => events.info(text))
      await finish('folders')
    }
    const forced = options.provision === true || (options.provisionWith?.length ?? 0) > 0
    if (pending.includes('provision') || forced) {
      ;({record, ran: provisioned} = await provisionAfterBoot(projectDir, record, config, options, events))
      if (pending.includes('provision')) await finish('provision')
    }
  }
  try {
    await Promise.race([stages(), whenAborted(signal)])
  } catch (error) {
    const interrupted = signal?.aborted === true
    if (connecting || firstBootUnfinished(record)) {
      // Do not leave a machine that never came up (or still trusts the insecure key) running.
      await stopUnfinished(context, record)
      if (interrupted)
        throw new InterruptedError(
          `Interrupted: machine ${record.name} had not finished booting, so vm stopped it`,
          `Run "vm up ${record.name}" to boot it again.`,
        )
      throw error
    }
    if (interrupted) {
      throw new InterruptedError(
        `Interrupted: machine ${record.name} is running, but its boot did not finish (${describeStages(pending)})`,
        `Run "vm up ${record.name}" to finish it.`,
      )
    }
    throw error
  }
  const ssh = record.ssh!
  return {
    provisioned,
    name: record.name,
    state: 'running',
    alreadyRunning: false,
    created: context.created,
    box: {name: record.box.name, version: record.box.version},
    accel: record.accel,
    ssh: {host: ssh.host, port: ssh.port, user: ssh.user},
    bootMs,
  }
}

export async function upMachine(
  projectDir: string,
  config: MachineConfig,
  events: MachineEvents,
  options: UpOptions = {},
): Promise<UpResult> {
  const defaultPaths = machinePaths(projectDir, config.name)
  // Nothing of a machine that could not be created stays behind (a missing box, say).
  const newDirs = missingDirs(defaultPaths.dir)
  let removeNewDirs = false
  const unlock = await lockMachine(defaultPaths.lock, config.name)
  let release: (() => void) | undefined
  try {
    const {status, record: found, unreadable} = await inspectMachine(projectDir, config.name)
    if (unreadable !== undefined) throw unreadable
    const running = status.state === 'running'
    const existing = found === undefined ? undefined : await adoptMovedProject(found, projectDir, defaultPaths, running, events.warn)
    // Runtime files (the QMP socket) are named by the recorded id, which a moved project keeps.
    let paths = existing === undefined ? defaultPaths : machinePaths(projectDir, config.name, undefined, existing.id)
    const leases = await ensureRuntimeDir('ports')
    if (running && existing !== undefined) {
      const left = unfinishedStages(existing)
      if (left.length > 0) {
        events.info(`the last boot of this machine did not finish; finishing it (${describeStages(left)})`)
        release = options.interrupt?.hold()
        return await finishBoot({projectDir, config, paths, record: existing, options, events, leases, created: false})
      }
      events.info(`already running (SSH on ${existing.ssh?.host}:${existing.ssh?.port})`)
      if (bootRelevant(existing.config) !== bootRelevant(config)) {
        events.warn('the Vmfile changed since this machine booted; run "vm reload" to apply the changes.')
      }
      const provisioned =
        options.provision === true || (options.provisionWith?.length ?? 0) > 0
          ? (await provisionAfterBoot(projectDir, existing, config, options, events)).ran
          : []
      return {
        name: config.name,
        state: 'running',
        alreadyRunning: true,
        created: false,
        box: status.box!,
        accel: existing.accel,
        ssh: existing.ssh,
        bootMs: undefined,
        provisioned,
      }
    }
    const created = existing === undefined
    let record: MachineRecord
    if (existing === undefined) {
      try {
        record = await createMachine(projectDir, config, paths, events)
        paths = machinePaths(projectDir, config.name, undefined, record.id)
      } catch (error) {
        await clearMachineDir(paths)
        removeNewDirs = true
        throw error
      }
    } else record = existing
    if (!created && bootRelevant(record.config) !== bootRelevant(config)) {
      if (options.applyConfig === true) {
        // The box stays pinned; everything else follows the Vmfile from this boot on.
        record = {...record, config: {...config, box: record.config.box, boxVersion: record.config.boxVersion}}
        events.info('applying the changed Vmfile settings')
      } else {
        events.warn(
          'the Vmfile changed since this machine last booted; the recorded settings are used. Run "vm reload" to apply the changes.',
        )
      }
    }
    if (status.state === 'aborted') events.warn('the machine was not shut down cleanly last time (aborted); booting it again')
    const host = hostFacts()
    const choice = await selectAccelerator(record.config.accel, host)
    if (choice.warning !== undefined) events.warn(choice.warning)
    record = {
      ...record,
      forwards: await resolveForwards(record.name, record.config.forwardedPorts, leases, record.id, (text) => events.info(text)),
    }
    // VNC: a display whose port no other machine or program holds, recorded for vm status.
    let vncPort: number | undefined
    let pid: number
    let port: number
    try {
      vncPort = record.config.vnc ? await leasePort(leases, record.id, VNC_PORT_RANGE) : undefined
    } catch (error) {
      await releaseForwards(leases, record.id, record.forwards ?? [])
      throw error
    }
    record = {...record, vncDisplay: vncPort === undefined ? undefined : vncPort - 5900}
    record = {...record, macs: await macsFor(record.id, record.config.networks, record.macs)}
    // Bridges checked, taps made, private switches held: before QEMU, so their errors come first.
    await detachNetworks(record)
    const networks = await attachNetworks(record)
    record = {...record, taps: networks.taps, nics: undefined, pending: undefined}
    // From here on, Ctrl-C undoes the boot instead of leaving a half-booted machine.
    release = options.interrupt?.hold()
    await writeRecord(paths.record, record)
    try {
      const started = await startWithLeasedPorts({
        machine: record.name,
        leaseDir: leases,
        owner: record.id,
        forwards: record.forwards ?? [],
        ports: record.config.forwardedPorts,
        onCorrected: (text) => events.info(text),
        start: async (sshPort, forwards) => {
          await rm(paths.serialLog, {force: true})
          try {
            return await startQemu(buildSpec({...record, forwards}, paths, choice.accel, sshPort, networks.nics), host, paths.qemuStderr)
          } catch (error) {
            const bridges = record.config.networks.flatMap((network) => (network.type === 'bridged' ? [network.bridge] : []))
            throw bridgeHelperError(record.name, bridges, stderrOf(error)) ?? error
          }
        },
      })
      ;({pid, sshPort: port} = started)
      record = {...record, forwards: started.forwards}
    } catch (error) {
      if (vncPort !== undefined) await releaseLease(leases, vncPort, record.id).catch(() => undefined)
      await detachNetworks(record).catch(() => undefined)
      await writeRecord(paths.record, {...record, taps: undefined})
      throw error
    } finally {
      await networks.release()
    }
    await transferLease(leases, port, record.id, pid)
    if (vncPort !== undefined) await transferLease(leases, vncPort, record.id, pid)
    for (const forward of record.forwards ?? [])
      await transferLease(leases, forward.host, record.id, pid, {protocol: forward.protocol, hostIp: forward.hostIp})
    const user = record.config.ssh.user ?? record.box.sshUser ?? 'vm'
    const keyReplaced = record.ssh?.keyReplaced ?? false
    record = {
      ...record,
      accel: choice.accel,
      ssh: {host: '127.0.0.1', port, user, keyReplaced},
      lastState: 'running',
      pending: stagesForBoot(keyReplaced),
    }
    await writeRecord(paths.record, record)
    return await finishBoot({projectDir, config, paths, record, options, events, leases, created})
  } finally {
    release?.()
    await unlock()
    if (removeNewDirs) for (const dir of newDirs) await rmdir(dir).catch(() => undefined)
  }
}
