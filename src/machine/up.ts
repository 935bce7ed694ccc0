import {mkdir, rm} from 'node:fs/promises'

import {stderrOf} from '../cli/errors.js'
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
import {recordBoxUse} from '../box/references.js'
import {addToIndex} from '../state/global-index.js'
import {machineId, machinePaths, type MachinePaths} from '../state/machine-files.js'
import {isMachineProcess, readPidfile} from '../state/process-check.js'
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
): Promise<string[]> {
  if (options.provision === false) return []
  const forced = options.provision === true || (options.provisionWith !== undefined && options.provisionWith.length > 0)
  const trigger = forced ? 'forced' : record.provisioned === true ? 'up' : 'first'
  const {ran} = await provisionRecord(projectDir, record, config.provision, trigger, options.provisionWith, events)
  return ran
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
  const id = machineId(projectDir, config.name)
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
async function replaceInsecureKey(record: MachineRecord, paths: MachinePaths, insecureKey: string): Promise<void> {
  const publicKey = await generateKeyPair(paths.privateKey, `vmfile ${record.name} ${record.id}`)
  const script = `umask 077 && mkdir -p ~/.ssh && printf '%s\\n' '${publicKey}' > ~/.ssh/authorized_keys.new && mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys && sync`
  await runProgram('ssh', [...sshArgs(sshTarget(record, paths, insecureKey, 'yes'), {batch: true, connectTimeout: 5}), script], {
    timeoutMs: 30_000,
  })
  await runProgram('ssh', [...sshArgs(sshTarget(record, paths, paths.privateKey, 'yes'), {batch: true, connectTimeout: 5}), 'true'], {
    timeoutMs: 30_000,
  })
}

/** Boots one machine (creating it first when needed) and waits until SSH answers. */
export interface UpOptions {
  /** Boot with the Vmfile's current settings instead of the recorded ones (vm reload). */
  applyConfig?: boolean
  /** true: run the provisioners (--provision); false: never (--no-provision); default: first up. */
  provision?: boolean | undefined
  /** Only these provisioners (names or types), --provision-with. */
  provisionWith?: string[] | undefined
}

export async function upMachine(
  projectDir: string,
  config: MachineConfig,
  events: MachineEvents,
  options: UpOptions = {},
): Promise<UpResult> {
  const paths = machinePaths(projectDir, config.name)
  const unlock = await lockMachine(paths.lock, config.name)
  try {
    const {status, record: existing} = await inspectMachine(projectDir, config.name)
    if (status.state === 'running' && existing !== undefined) {
      events.info(`already running (SSH on ${existing.ssh?.host}:${existing.ssh?.port})`)
      if (bootRelevant(existing.config) !== bootRelevant(config)) {
        events.warn('the Vmfile changed since this machine booted; run "vm reload" to apply the changes.')
      }
      const provisioned =
        options.provision === true || (options.provisionWith?.length ?? 0) > 0
          ? await provisionAfterBoot(projectDir, existing, config, options, events)
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
    let record = existing ?? (await createMachine(projectDir, config, paths, events))
    if (!created && bootRelevant(existing.config) !== bootRelevant(config)) {
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
    const leases = await ensureRuntimeDir('ports')
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
    record = {...record, taps: networks.taps, nics: undefined}
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
    record = {
      ...record,
      accel: choice.accel,
      ssh: {host: '127.0.0.1', port, user, keyReplaced: record.ssh?.keyReplaced ?? false},
      lastState: 'running',
    }
    await writeRecord(paths.record, record)
    const firstBoot = !record.ssh!.keyReplaced
    const key = firstBoot ? await insecurePrivateKey(paths.dir) : paths.privateKey
    const target = sshTarget(record, paths, key, firstBoot ? 'accept-new' : 'yes')
    let bootMs: number
    try {
      bootMs = await waitForSsh({
        target,
        timeoutMs: record.config.bootTimeout * 1000,
        serialLog: paths.serialLog,
        qemuStderr: paths.qemuStderr,
        isAlive: () => isMachineProcess(readPidfile(paths.pid), paths.qmpSocket),
        onProgress: events.progress,
      })
      if (firstBoot) {
        await replaceInsecureKey(record, paths, key)
        record = {...record, ssh: {...record.ssh!, keyReplaced: true}}
        await writeRecord(paths.record, record)
      }
    } catch (error) {
      // Do not leave a machine that never came up running: stop it and say so truthfully.
      await stopQemu(readPidfile(paths.pid), paths.qmpSocket, 0)
      await releaseLease(leases, port, record.id)
      await detachNetworks(record).catch(() => undefined)
      await writeRecord(paths.record, {...record, lastState: 'poweroff', taps: undefined})
      throw error
    } finally {
      if (firstBoot) await rm(key, {force: true})
    }
    const nics = await configureGuestNetworks(record, sshTarget(record, paths, paths.privateKey, 'yes'), (text) => events.warn(text))
    const addresses = nics.slice(1).flatMap((nic) => (nic.address === undefined ? [] : [`${nic.address} (${nic.type} ${nic.network})`]))
    if (addresses.length > 0) events.info(`networks: ${addresses.join(', ')}`)
    record = {...record, nics}
    await writeRecord(paths.record, record)
    await syncFolders(record.config.syncedFolders, sshTarget(record, paths, paths.privateKey, 'yes'), (text) => events.info(text))
    const provisioned = await provisionAfterBoot(projectDir, record, config, options, events)
    return {
      provisioned,
      name: config.name,
      state: 'running',
      alreadyRunning: false,
      created,
      box: {name: record.box.name, version: record.box.version},
      accel: choice.accel,
      ssh: {host: '127.0.0.1', port, user},
      bootMs,
    }
  } finally {
    await unlock()
  }
}
