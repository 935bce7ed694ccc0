/**
 * What an engine must provide to run vm's machines. Orchestration (src/machine) knows only
 * this interface: it prepares the box, asks the machine's driver to make disks and to start,
 * connects over SSH to the endpoint the driver returned, and converges the guest. Everything
 * engine-specific (processes or domains, their state files, host networking, port leases,
 * how a dead machine is recognized) stays behind it, in src/driver/NAME/.
 *
 * A driver is stateless between calls: what it must remember about a machine it keeps in the
 * machine record it is handed (and returns updated) or in files of its own in the machine's
 * directory.
 */

import type {Problem} from '../vmfile/validate.js'
import type {MachineConfig} from '../vmfile/types.js'
import type {MachineRecord} from '../machine/record.js'
import type {JumpHost} from '../ssh/options.js'
import type {BootWatch} from '../ssh/wait.js'

/** What a driver can do; orchestration asks instead of assuming. */
export interface DriverFeatures {
  /** Synced folder kinds the engine can provide: 9p (mounted from the host) and/or rsync (copied over SSH). */
  shares: ReadonlyArray<'9p' | 'rsync'>
  /** Network kinds besides the first (management) NIC. */
  networks: ReadonlyArray<'bridged' | 'private'>
  /**
   * How SSH reaches the guest: `host-port`, a port on the host forwarded to the guest (QEMU's
   * user network); `guest-address`, the guest's own address, possibly through a jump host.
   */
  ssh: 'guest-address' | 'host-port'
  snapshots: boolean
  suspend: boolean
  /** The engine can write a machine's first disk out as one self-contained, compressed image (exportDisk; vm package). Absent: no. */
  exportDisk?: boolean | undefined
}

/** A host ssh goes through to reach the guest (ProxyJump). */
export type SshJump = JumpHost

/** Where the guest's sshd answers: data the driver returns, never assumed. */
export interface SshEndpoint {
  host: string
  port: number
  /** A host to go through (ssh's ProxyJump), e.g. the remote libvirt host. */
  jump?: SshJump | undefined
}

/** What the driver found about the host; `accel` is what a machine will run with. */
export interface HostReport {
  /** The accelerator machines get ("kvm", "tcg", ...). */
  accel: string
  /** Said once when the host cannot give what the machine asked for (e.g. KVM that does not work). */
  warning?: string | undefined
}

/** A machine as a driver sees it: its directory, its id, and its record when one exists. */
export interface DriverMachine {
  name: string
  /** The machine's own state directory (.vm/machines/NAME). */
  dir: string
  /** Set once the machine was created; undefined when its record is unreadable and the id unknown. */
  id: string | undefined
  record: MachineRecord | undefined
}

/** A machine as a driver sees it when its record exists. */
export interface CreatedMachine extends DriverMachine {
  id: string
  record: MachineRecord
}

/** Where a start picks the machine up instead of booting it: its saved state (vm suspend) or a snapshot with memory. */
export type StartFrom = {kind: 'saved'} | {kind: 'snapshot'; name: string}

export interface StartOptions {
  /** Continue from a saved state or a snapshot instead of a cold boot (needs features.suspend / features.snapshots). */
  from?: StartFrom | undefined
  /** Persists the record the driver updated (host resources it holds, before they are used). */
  save(record: MachineRecord): Promise<void>
  /** A line worth telling the user (a port that was corrected, say). */
  info(text: string): void
  warn(text: string): void
}

export interface Started {
  /** The record with what the driver set up (forwarded ports, host devices, accelerator ...). */
  record: MachineRecord
  ssh: SshEndpoint
  /** The accelerator the machine runs with. */
  accel: string
}

/** The engine's view of a machine, derived afresh every time. */
export interface EngineState {
  /** The machine's engine process (or domain) runs. */
  alive: boolean
  /** Its process id, when the engine has one on this host. */
  pid?: number | undefined
  /** The guest powered itself off cleanly (as opposed to a crash or a kill) the last time it stopped. */
  cleanPowerOff: boolean
  /** Where the graphical console answers while the machine runs, e.g. "127.0.0.1:5901". */
  vnc?: string | undefined
  /** A saved state (vm suspend) waits to be resumed. */
  saved?: boolean | undefined
}

/** A snapshot as the engine holds it (metadata vm keeps on top lives in the machine record). */
export interface EngineSnapshot {
  name: string
  /** Bytes of memory and device state it holds; 0 for a snapshot of the disks only. */
  memoryBytes: number
  /** When it was taken, as the engine says (ISO 8601). */
  createdAt: string
}

/**
 * Snapshots of a machine's disks, with its memory when taken while it runs. `running` says
 * whether the machine's engine runs now (the caller inspected it under the machine's lock).
 */
export interface SnapshotOperations {
  list(machine: CreatedMachine): Promise<EngineSnapshot[]>
  /** Running: a live snapshot, memory included (the guest pauses meanwhile). Halted: the disks only. */
  save(machine: CreatedMachine, name: string, running: boolean): Promise<void>
  /** Running: the machine continues from the snapshot. Halted: its disks go back to the snapshot's. */
  restore(machine: CreatedMachine, name: string, running: boolean): Promise<void>
  delete(machine: CreatedMachine, name: string, running: boolean): Promise<void>
  /** The virtual size of each of the machine's disks, in bytes. */
  diskSizes(machine: CreatedMachine): Promise<number[]>
}

/** Suspend: the running state saved into the machine's directory; start(from: saved) resumes it. */
export interface SuspendOperations {
  /** Saves the running machine's state and stops it, giving back its host resources as stop does. */
  suspend(machine: CreatedMachine): Promise<Stopped>
  /** Throws a saved state away (the machine then boots cold). */
  discard(machine: DriverMachine): Promise<void>
}

/**
 * A machine's serial console: `socket`, a Unix stream socket attached to it while the machine
 * runs (undefined otherwise, or when the engine has none); `log`, the file on this host that
 * holds what it printed since it last started. An engine whose console is elsewhere (a remote
 * libvirt host) gives `attach`, a program that joins this terminal to it (Ctrl-] detaches), and
 * `readLog`, which fetches the log.
 */
export interface SerialConsole {
  socket: string | undefined
  log: string
  attach?: {program: string; args: string[]} | undefined
  readLog?: (() => Promise<string>) | undefined
}

export type StopMethod = 'acpi' | 'already-stopped' | 'killed' | 'quit'

export interface Stopped {
  method: StopMethod
  /** The record with the host resources the driver held given back (undefined when there was none). */
  record: MachineRecord | undefined
}

export interface MachineDriver {
  /** The name records and the Vmfile use ("qemu"). */
  readonly name: string
  /** How messages call the engine's machine ("QEMU", "libvirt domain"). */
  readonly displayName: string
  readonly features: DriverFeatures
  /** Present when features.snapshots is true. */
  readonly snapshots?: SnapshotOperations | undefined
  /** Present when features.suspend is true. */
  readonly suspension?: SuspendOperations | undefined
  /** The first NIC's address when the engine fixes it (QEMU's user network), else undefined. */
  readonly natAddress: string | undefined
  /**
   * The synced folder kinds a machine with `config` can get, when they depend on its settings
   * (a remote libvirt host cannot mount this host's folders); absent: features.shares.
   */
  shares?(config: MachineConfig): ReadonlyArray<'9p' | 'rsync'>
  /** Probes the host once per process (cached); `requested` is the Vmfile's accel. */
  probeHost(requested: MachineConfig['accel']): Promise<HostReport>
  /** What this engine cannot do of `config`, each problem located at its Vmfile key. */
  validate(config: MachineConfig): Problem[]
  /** The files of a new machine that hold the box's disks (the box store records them as its users). */
  diskFiles(machine: {dir: string}, count: number): string[]
  /** Makes the machine's disks on the box's ones; `sizeMiB` grows the first. */
  createDisks(machine: CreatedMachine, sizeMiB: number | undefined): Promise<void>
  /** Starts the machine; resolves once it runs and says where SSH will answer. */
  start(machine: CreatedMachine, host: HostReport, options: StartOptions): Promise<Started>
  /** What the guest's boot looks like from outside, for the wait for SSH. */
  bootWatch(machine: CreatedMachine): BootWatch
  /** The machine's serial console (see SerialConsole). */
  serialConsole?(machine: DriverMachine): SerialConsole | Promise<SerialConsole>
  inspect(machine: DriverMachine): Promise<EngineState>
  /**
   * Stops the machine (ACPI power-down, up to `graceMs`, then harder; 0: at once) and gives
   * back the host resources its boot took. Safe when it is not running.
   */
  stop(machine: DriverMachine, graceMs: number): Promise<Stopped>
  /**
   * Stops the machine at once and removes what the engine keeps for it outside its directory;
   * refuses (and removes nothing) while another process still uses its disks. Returns the
   * machine ids the engine knew it by (useful when the record was unreadable).
   */
  destroy(machine: DriverMachine): Promise<{ids: string[]}>
  /**
   * Only when `features.exportDisk`: writes the machine's first disk, flattened (no backing
   * file) and compressed, as a qcow2 image at `target` (which must not exist). The machine must
   * be stopped.
   */
  exportDisk?(machine: CreatedMachine, target: string): Promise<void>
}
