/** The Vmfile after defaults: what every later stage (box, machine, driver) receives. */

export type Accel = 'auto' | 'kvm' | 'tcg'
export type RunWhen = 'always' | 'never' | 'once'

export interface SshConfig {
  /** Login user; undefined means the box's default user. */
  user: string | undefined
  port: number
  forwardAgent: boolean
  /**
   * Absolute paths of the private keys offered for the first login, in order, instead of the
   * insecure keys (as in Vagrant); undefined: the insecure keys.
   */
  privateKeyPaths: string[] | undefined
  /** false: the first-login keys stay the machine's keys (never replaced by its own). */
  insertKey: boolean
}

export interface ForwardedPort {
  guest: number
  host: number
  hostIp: string
  protocol: 'tcp' | 'udp'
  autoCorrect: boolean
}

export type NetworkConfig =
  | {type: 'bridged'; bridge: string; mac: string | undefined; ip: string | undefined}
  | {
      type: 'private'
      ip: string
      /** Machines naming the same network share it; undefined: the project's own network. */ name: string | undefined
      mac: string | undefined
    }

export interface SyncedFolder {
  /** Absolute host path. */
  host: string
  guest: string
  type: '9p' | 'auto' | 'rsync'
  readOnly: boolean
  exclude: string[]
}

interface ProvisionerBase {
  name: string
  run: RunWhen
}

export type Provisioner =
  | (ProvisionerBase & {type: 'ansible'; playbook: string; extraVars: Record<string, unknown>; become: boolean})
  | (ProvisionerBase & {type: 'file'; source: string; destination: string})
  | (ProvisionerBase & {
      type: 'shell'
      inline: string | undefined
      path: string | undefined
      args: string[]
      env: Record<string, string>
      privileged: boolean
      uploadPath: string
    })

/** Vmfile `cloud_init:`; file paths are absolute. */
export interface CloudInitConfig {
  userData: string | undefined
  userDataFile: string | undefined
  networkConfig: string | undefined
  networkConfigFile: string | undefined
}

/** Vmfile `libvirt:`: where a machine of provider libvirt runs. */
export interface LibvirtConfig {
  /** undefined: LIBVIRT_DEFAULT_URI, else qemu:///system (resolved when the machine is created). */
  uri: string | undefined
  pool: string
  network: string
}

export interface MachineConfig {
  name: string
  /** The engine a new machine is created with (src/driver/registry.ts). */
  provider: 'qemu' | 'libvirt'
  libvirt: LibvirtConfig
  box: string
  boxVersion: string | undefined
  boxUrl: string | undefined
  cpus: number
  /** MiB */
  memory: number
  /** MiB; undefined keeps the box's size. */
  disk: number | undefined
  accel: Accel
  /** Seconds. */
  bootTimeout: number
  hostname: string | undefined
  vnc: boolean
  ssh: SshConfig
  /** The first NIC; isolated: the guest reaches nothing but the host's forwarded services. */
  nat: {isolated: boolean}
  /** Vmfile `cloud_init:` (used by machines of cloud-image boxes); undefined when absent. */
  cloudInit: CloudInitConfig | undefined
  forwardedPorts: ForwardedPort[]
  networks: NetworkConfig[]
  syncedFolders: SyncedFolder[]
  provision: Provisioner[]
  primary: boolean
  autostart: boolean
}

export interface ProjectConfig {
  /** Absolute path of the Vmfile. */
  file: string
  /** The project directory: where the Vmfile is. */
  dir: string
  machines: MachineConfig[]
  /** Name of the machine used when a command names none. */
  primary: string
}
