/** What the QEMU driver needs to start a machine: fully resolved, no YAML, no downloads. */

export type Accelerator = 'kvm' | 'tcg'

export interface DiskSpec {
  /** The machine's overlay (or a raw/qcow2 disk of its own). */
  path: string
  format: 'qcow2' | 'raw'
}

export interface KernelBoot {
  kernel: string
  initrd?: string | undefined
  cmdline?: string | undefined
  /** "qboot": the kernel is an uncompressed vmlinux loaded by the qboot firmware. */
  firmware?: string | undefined
}

export interface PortForward {
  protocol: 'tcp' | 'udp'
  hostIp: string
  hostPort: number
  guestPort: number
}

export type NicSpec =
  /** restrict: the guest reaches nothing but the forwarded ports (QEMU's restrict=on). */
  | {kind: 'user'; mac: string; forwards: PortForward[]; restrict?: boolean | undefined}
  | {kind: 'tap'; mac: string; ifname: string}
  | {kind: 'bridge'; mac: string; bridge: string}
  /** A private network: a Unix stream socket of the network's switch. */
  | {kind: 'stream'; mac: string; socket: string}

export interface ShareSpec {
  /** The 9p mount tag the guest uses. */
  tag: string
  path: string
  readOnly: boolean
}

export interface MachineSpec {
  name: string
  cpus: number
  memoryMiB: number
  accel: Accelerator
  disks: DiskSpec[]
  /** A cloud-init seed image (raw ISO 9660), attached read-only after the disks. */
  seed?: string | undefined
  kernel?: KernelBoot | undefined
  nics: NicSpec[]
  shares: ShareSpec[]
  /** VNC display number (port 5900 + display) on 127.0.0.1, when wanted. */
  vncDisplay?: number | undefined
  /** consoleSocket: the serial console's Unix socket (vm console); QEMU still logs it to serialLog. */
  files: {pidfile: string; qmpSocket: string; serialLog: string; consoleSocket?: string | undefined}
  /** Continue from a saved state instead of booting: QEMU's -incoming URI (it waits paused for it). */
  incoming?: string | undefined
  /**
   * The saved state file QEMU reads on its descriptor INCOMING_FD (with `incoming` `fd:3`):
   * opened by vm and inherited by QEMU when it starts.
   */
  incomingFile?: string | undefined
  /** Continue from this internal snapshot of the disks (memory included): -loadvm. */
  loadvm?: string | undefined
}

/** Facts about the host, probed once elsewhere. */
export interface HostFacts {
  qemuBinary: string
  /** Path of qboot.rom when installed (needed for vmlinux direct boot). */
  qbootRom?: string | undefined
}
