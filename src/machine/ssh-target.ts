import type {SshTarget} from '../ssh/options.js'
import type {MachinePaths} from '../state/machine-files.js'
import type {MachineRecord} from './record.js'

/** The user vm logs in as: the Vmfile's, else the box's, else vm's convention. */
export function loginUser(record: MachineRecord): string {
  return record.config.ssh.user ?? record.box.sshUser ?? 'vm'
}

/**
 * How to reach the machine over SSH: the endpoint its driver returned at boot (host, port, jump
 * host), `identityFile`, and the host key pinned for the machine.
 */
export function sshTarget(record: MachineRecord, paths: MachinePaths, identityFile: string, strict: 'accept-new' | 'yes'): SshTarget {
  return {
    host: record.ssh?.host ?? '',
    port: record.ssh?.port ?? 0,
    user: record.ssh?.user ?? loginUser(record),
    jump: record.ssh?.jump,
    identityFile,
    knownHostsFile: paths.knownHosts,
    hostKeyAlias: `vm-${record.id}`,
    strictHostKeyChecking: strict,
    forwardAgent: record.config.ssh.forwardAgent,
  }
}
