import type {SshTarget} from '../../src/ssh/options.js'

/** An SSH target as vm records one for a machine, for tests of how its options are written. */
export const sampleTarget: SshTarget = {
  host: '127.0.0.1',
  port: 2201,
  user: 'vm',
  identityFiles: ['/p/.vm/machines/default/id_ed25519'],
  knownHostsFile: '/p/.vm/machines/default/known_hosts',
  hostKeyAlias: 'vm-0123456789abcdef',
  strictHostKeyChecking: 'yes',
}
