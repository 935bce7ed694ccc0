import type {SshTarget} from '../ssh/options.js'
import type {MachinePaths} from '../state/machine-files.js'
import type {MachineRecord} from './record.js'

/**
 * The user vm logs in as: the Vmfile's, else the box's (vm's own boxes declare `ssh_user`),
 * else Vagrant's convention, `vagrant`, which boxes packaged for Vagrant follow.
 */
export function loginUser(record: MachineRecord): string {
  return record.config.ssh.user ?? record.box.sshUser ?? 'vagrant'
}

/**
 * The keys vm logs in with once the first boot is done: the machine's own key, or, when the
 * Vmfile says insert_key: false, the first-login keys it kept (record.ssh.loginKeys).
 */
export function machineKeys(record: MachineRecord, paths: MachinePaths): string[] {
  return record.ssh?.loginKeys ?? [paths.privateKey]
}

/**
 * How to reach the machine over SSH: the endpoint its driver returned at boot (host, port, jump
 * host), the keys to offer (in order), and the host key pinned for the machine.
 */
export function sshTarget(
  record: MachineRecord,
  paths: MachinePaths,
  identityFiles: readonly string[],
  strict: 'accept-new' | 'yes',
): SshTarget {
  return {
    host: record.ssh?.host ?? '',
    port: record.ssh?.port ?? 0,
    user: record.ssh?.user ?? loginUser(record),
    jump: record.ssh?.jump,
    identityFiles,
    knownHostsFile: paths.knownHosts,
    hostKeyAlias: `vm-${record.id}`,
    strictHostKeyChecking: strict,
    forwardAgent: record.config.ssh.forwardAgent,
    machineId: record.id,
  }
}
