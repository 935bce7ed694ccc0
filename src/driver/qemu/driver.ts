import {existsSync} from 'node:fs'
import {readdir, rm} from 'node:fs/promises'
import path from 'node:path'

import {ExternalError, stderrOf, UserError} from '../../errors/errors.js'
import type {MachineRecord} from '../../machine/record.js'
import {releaseForwards, resolveForwards} from '../../network/forwards.js'
import {leasePort, leasesDir, releaseLease, transferLease, VNC_PORT_RANGE} from '../../network/ports.js'
import {labelledTail, readTail, type BootWatch} from '../../ssh/wait.js'
import {processesHolding} from '../../state/process-check.js'
import {shareTag} from '../../sync/folders.js'
import type {SyncedFolder} from '../../vmfile/types.js'
import type {CreatedMachine, DriverMachine, EngineState, HostReport, MachineDriver, Started, StartOptions, Stopped} from '../driver.js'
import {hostFacts, selectAccelerator} from './host.js'
import {createOverlay, exportFlatDisk} from './img.js'
import {startWithLeasedPorts} from './leased-start.js'
import {findMachineProcess, isMachineProcess, type MachineProcess} from './machine-process.js'
import {bridgeHelperError} from './network/bridge.js'
import {attachNetworks, detachNetworks} from './networks.js'
import {startQemu, stopQemu} from './qemu-process.js'
import {incomingFrom, qemuSnapshots, saveRunningState, type Incoming} from './snapshot.js'
import {waitWhileStatus, withQmp} from './qmp.js'
import {OVERLAY_NAME, qemuPaths, type QemuPaths} from './files.js'
import {readPidfile} from '../../state/process-check.js'
import type {Accelerator, MachineSpec, NicSpec, ShareSpec} from './spec.js'

/** The kernel's last words on a clean power-off, as the serial console shows them. */
const CLEAN_POWEROFF = /reboot: Power down|reboot: System halted/

function pathsOf(machine: DriverMachine): QemuPaths {
  return qemuPaths(machine.dir, machine.id)
}

/** 9p devices: every folder whose type is 9p or auto (auto may fall back to rsync in the guest). */
export function sharesFor(folders: readonly SyncedFolder[]): ShareSpec[] {
  return folders.flatMap((folder, index) =>
    folder.type === 'rsync' ? [] : [{tag: shareTag(index), path: folder.host, readOnly: folder.readOnly}],
  )
}

/** The machine as QEMU is told to run it: a pure function of the record and what was leased. */
export function machineSpec(
  record: MachineRecord,
  paths: QemuPaths,
  accel: Accelerator,
  sshPort: number,
  extraNics: NicSpec[],
): MachineSpec {
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
    disks: record.box.disks.map((_disk, index) => ({path: paths.overlay(index), format: 'qcow2' as const})),
    seed: record.cloudInit === undefined ? undefined : path.join(paths.dir, record.cloudInit.seed),
    kernel:
      record.box.kernel === undefined
        ? undefined
        : {kernel: record.box.kernel, initrd: record.box.initrd, cmdline: record.box.cmdline, firmware: record.box.firmware},
    nics: [{kind: 'user', mac: record.macs[0]!, forwards, restrict: config.nat.isolated}, ...extraNics],
    shares: sharesFor(config.syncedFolders),
    vncDisplay: record.vncDisplay,
    files: {pidfile: paths.pid, qmpSocket: paths.qmpSocket, serialLog: paths.serialLog, consoleSocket: paths.consoleSocket},
  }
}

/**
 * Gives back every port the machine's QEMU held (SSH, VNC, forwarded ports). Leases of a dead
 * QEMU are taken over anyway; releasing them at once keeps them from looking held meanwhile.
 */
async function releaseMachineLeases(record: MachineRecord): Promise<void> {
  const leases = await leasesDir()
  if (record.ssh !== undefined) await releaseLease(leases, record.ssh.port, record.id)
  if (record.vncDisplay !== undefined) await releaseLease(leases, 5900 + record.vncDisplay, record.id)
  await releaseForwards(leases, record.id, record.forwards ?? [])
}

/** Refuses to go on while any process (a QEMU whose pidfile was lost, say) has a disk of the machine open. */
async function ensureDisksUnused(machine: DriverMachine): Promise<void> {
  const disks = (await readdir(machine.dir).catch(() => [] as string[])).filter((file) => OVERLAY_NAME.test(file))
  const holders = [...new Set(disks.flatMap((disk) => processesHolding(path.join(machine.dir, disk))))]
  if (holders.length > 0) {
    throw new UserError(`Machine ${machine.name}'s disk is still in use by process ${holders.join(', ')}; nothing was deleted`, {
      code: 'DISK_IN_USE',
      hint: `Stop process ${holders.join(', ')} first (it may be the machine's QEMU), then run "vm destroy -f ${machine.name}" again.`,
    })
  }
}

/** The machine id a running QEMU was started with: its QMP socket is named after it. */
function idFromProcess(found: MachineProcess | undefined): string | undefined {
  const match = found?.qmpSocket === undefined ? undefined : /^([0-9a-f]{16})\.qmp$/.exec(path.basename(found.qmpSocket))
  return match?.[1]
}

/**
 * Waits until a QEMU started with -incoming has read the saved state, continues the guest (it
 * was saved paused) and removes the state file: from then on the disks move on without it. A
 * QEMU that fails to take the state is stopped; the state file stays for another try.
 */
async function continueIncoming(name: string, paths: QemuPaths): Promise<void> {
  const running = findMachineProcess(paths.process)
  try {
    await withQmp(running?.qmpSocket ?? paths.qmpSocket, async (client) => {
      const status = await waitWhileStatus(client, 'inmigrate', 300_000)
      if (status === 'paused' || status === 'prelaunch' || status === 'postmigrate') await client.execute('cont')
      else if (status !== 'running') throw new Error(`QEMU is in state "${status}" after reading the saved state`)
    })
  } catch (error) {
    await stopQemu(findMachineProcess(paths.process), paths.process, 0).catch(() => undefined)
    const said = await readTail(paths.stderr, 5)
    throw new ExternalError(
      `Could not resume machine ${name} from its saved state: ${(error as Error).message}`,
      'qemu',
      ['-incoming'],
      said,
      {
        hint: `The saved state is kept. "vm halt -f ${name}" discards it so that the machine boots afresh.`,
      },
    )
  }
  await rm(paths.savedState, {force: true})
}

/**
 * QEMU on this host: one daemonized QEMU process per machine, recognized by its pidfile and its
 * first overlay; SSH through a forwarded port of the user-mode network on 127.0.0.1; bridged
 * NICs through taps (as root) or QEMU's bridge helper; private networks through a small switch.
 */
export const qemuDriver: MachineDriver = {
  name: 'qemu',
  displayName: 'QEMU',
  features: {
    shares: ['9p', 'rsync'],
    networks: ['bridged', 'private'],
    ssh: 'host-port',
    snapshots: true,
    suspend: true,
    exportDisk: true,
  },
  snapshots: qemuSnapshots,
  suspension: {
    async suspend(machine) {
      await saveRunningState(machine, pathsOf(machine).savedState)
      // QEMU holds nothing worth keeping now: quit it and give back its host resources.
      return qemuDriver.stop(machine, 0)
    },
    async discard(machine) {
      await rm(pathsOf(machine).savedState, {force: true})
    },
  },
  natAddress: '10.0.2.15/24',

  async probeHost(requested) {
    const choice = await selectAccelerator(requested, hostFacts())
    return {accel: choice.accel, warning: choice.warning}
  },

  validate() {
    // Every Vmfile setting has a QEMU implementation; host checks (bridges, KVM) happen at start.
    return []
  },

  diskFiles(machine, count) {
    const paths = qemuPaths(machine.dir, undefined)
    return Array.from({length: count}, (_unused, index) => paths.overlay(index))
  },

  async createDisks(machine, sizeMiB) {
    const paths = pathsOf(machine)
    for (const [index, disk] of machine.record.box.disks.entries())
      await createOverlay(disk.path, disk.format, paths.overlay(index), index === 0 ? sizeMiB : undefined)
  },

  async start(machine: CreatedMachine, host: HostReport, options: StartOptions): Promise<Started> {
    const paths = pathsOf(machine)
    const leases = await leasesDir()
    const facts = hostFacts()
    const from = options.from
    if (from?.kind === 'saved' && !existsSync(paths.savedState))
      throw new UserError(`Machine ${machine.name} has no saved state to resume`, {
        code: 'NO_SAVED_STATE',
        hint: `Run "vm up ${machine.name}" to boot it.`,
      })
    const resume: Partial<Incoming> = from?.kind === 'saved' ? await incomingFrom(paths.savedState) : {}
    const load = from?.kind === 'snapshot' ? {loadvm: from.name} : {}
    let record: MachineRecord = machine.record
    record = {...record, forwards: await resolveForwards(record.name, record.config.forwardedPorts, leases, record.id, options.info)}
    // VNC: a display whose port no other machine or program holds, recorded for vm status.
    let vncPort: number | undefined
    try {
      vncPort = record.config.vnc ? await leasePort(leases, record.id, VNC_PORT_RANGE) : undefined
    } catch (error) {
      await releaseForwards(leases, record.id, record.forwards ?? [])
      throw error
    }
    record = {...record, vncDisplay: vncPort === undefined ? undefined : vncPort - 5900}
    // Bridges checked, taps made, private switches held: before QEMU, so their errors come first.
    await detachNetworks(record)
    const networks = await attachNetworks(record)
    record = {...record, taps: networks.taps}
    await options.save(record)
    let pid: number
    let sshPort: number
    try {
      const started = await startWithLeasedPorts({
        machine: record.name,
        leaseDir: leases,
        owner: record.id,
        forwards: record.forwards ?? [],
        ports: record.config.forwardedPorts,
        onCorrected: options.info,
        start: async (port, forwards) => {
          await rm(paths.serialLog, {force: true})
          try {
            const spec = {...machineSpec({...record, forwards}, paths, host.accel as Accelerator, port, networks.nics), ...resume, ...load}
            const pid = await startQemu(spec, facts, paths.stderr)
            if (resume.incoming !== undefined) await continueIncoming(machine.name, paths)
            return pid
          } catch (error) {
            const bridges = record.config.networks.flatMap((network) => (network.type === 'bridged' ? [network.bridge] : []))
            throw bridgeHelperError(record.name, bridges, stderrOf(error)) ?? error
          }
        },
      })
      ;({pid, sshPort} = started)
      record = {...record, forwards: started.forwards}
    } catch (error) {
      if (vncPort !== undefined) await releaseLease(leases, vncPort, record.id).catch(() => undefined)
      await detachNetworks(record).catch(() => undefined)
      await options.save({...record, taps: undefined})
      throw error
    } finally {
      await networks.release()
    }
    // The leases now belong to QEMU: they stay held exactly as long as it runs.
    await transferLease(leases, sshPort, record.id, pid)
    if (vncPort !== undefined) await transferLease(leases, vncPort, record.id, pid)
    for (const forward of record.forwards ?? [])
      await transferLease(leases, forward.host, record.id, pid, {protocol: forward.protocol, hostIp: forward.hostIp})
    return {record, ssh: {host: '127.0.0.1', port: sshPort}, accel: host.accel}
  },

  bootWatch(machine): BootWatch {
    const paths = pathsOf(machine)
    return {
      engine: 'QEMU',
      isAlive: () => isMachineProcess(readPidfile(paths.pid), paths.process),
      consoleTail: (lines) => readTail(paths.serialLog, lines),
      bootEvidence: async () => {
        const serial = await readTail(paths.serialLog)
        const stderr = await readTail(paths.stderr, 5)
        return [...labelledTail(`serial log (${paths.serialLog}):`, serial), ...(stderr === '' ? [] : labelledTail('QEMU stderr:', stderr))]
      },
    }
  },

  serialConsole(machine) {
    const paths = pathsOf(machine)
    return {socket: findMachineProcess(paths.process)?.consoleSocket, log: paths.serialLog}
  },

  async inspect(machine): Promise<EngineState> {
    const paths = pathsOf(machine)
    const saved = existsSync(paths.savedState)
    const found = findMachineProcess(paths.process)
    const record = machine.record
    const wasRunning = record !== undefined && found === undefined && record.lastState === 'running'
    return {
      alive: found !== undefined,
      pid: found?.pid,
      // The serial console is the evidence: a guest that powered itself off said so there.
      cleanPowerOff: wasRunning && CLEAN_POWEROFF.test(await readTail(paths.serialLog, 30)),
      vnc: found !== undefined && record?.vncDisplay !== undefined ? `127.0.0.1:${5900 + record.vncDisplay}` : undefined,
      saved,
    }
  },

  async stop(machine, graceMs): Promise<Stopped> {
    const paths = pathsOf(machine)
    const method = await stopQemu(findMachineProcess(paths.process), paths.process, graceMs)
    await rm(paths.pid, {force: true})
    const record = machine.record
    if (record === undefined) return {method, record: undefined}
    await detachNetworks(record)
    await releaseMachineLeases(record)
    return {method, record: {...record, taps: undefined}}
  },

  async destroy(machine) {
    const paths = pathsOf(machine)
    const running = findMachineProcess(paths.process)
    await stopQemu(running, paths.process, 0)
    await ensureDisksUnused(machine)
    if (machine.record !== undefined) {
      await detachNetworks(machine.record)
      await releaseMachineLeases(machine.record)
    }
    await rm(paths.qmpSocket, {force: true})
    await rm(paths.consoleSocket, {force: true})
    if (running?.qmpSocket !== undefined) await rm(running.qmpSocket, {force: true})
    // An unreadable record: the id is known from QEMU's QMP socket when it ran.
    const id = idFromProcess(running)
    return {ids: id === undefined ? [] : [id]}
  },

  async exportDisk(machine, target) {
    const paths = pathsOf(machine)
    const running = findMachineProcess(paths.process)
    if (running !== undefined) {
      throw new UserError(`Machine ${machine.name} is running (QEMU pid ${running.pid}); its disk cannot be exported now`, {
        code: 'MACHINE_RUNNING',
        hint: `Run "vm halt ${machine.name}" first.`,
      })
    }
    await exportFlatDisk(paths.overlay(0), target)
  },
}
