import {describe, expect, it} from 'vitest'

import {renderSshConfig, sshArgs, type SshTarget} from '../../src/ssh/options.js'

const target: SshTarget = {
  host: '127.0.0.1',
  port: 2201,
  user: 'vm',
  identityFile: '/p/.vm/machines/default/id_ed25519',
  knownHostsFile: '/p/.vm/machines/default/known_hosts',
  hostKeyAlias: 'vm-0123456789abcdef',
  strictHostKeyChecking: 'yes',
}

describe('ssh options', () => {
  it('renders ssh arguments with strict host key checking against the machine known_hosts', () => {
    expect(sshArgs(target, {batch: true, connectTimeout: 3})).toEqual([
      ...['-o', 'Port=2201', '-o', 'User=vm', '-o', 'IdentityFile=/p/.vm/machines/default/id_ed25519', '-o', 'IdentitiesOnly=yes'],
      ...['-o', 'UserKnownHostsFile=/p/.vm/machines/default/known_hosts', '-o', 'HostKeyAlias=vm-0123456789abcdef'],
      ...['-o', 'StrictHostKeyChecking=yes', '-o', 'PasswordAuthentication=no', '-o', 'LogLevel=ERROR', '-o', 'ForwardAgent=no'],
      ...['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3', '127.0.0.1'],
    ])
  })

  it('quotes paths with spaces and escapes % in them, as ssh parses -o like a config line', () => {
    const args = sshArgs({...target, identityFile: '/my project/.vm/key', knownHostsFile: '/100% done/known_hosts'})
    expect(args).toContain('IdentityFile="/my project/.vm/key"')
    expect(args).toContain('UserKnownHostsFile="/100%% done/known_hosts"')
  })

  it('renders an ssh_config Host block', () => {
    expect(renderSshConfig('web', {...target, identityFile: '/my dir/key'})).toBe(
      [
        'Host web',
        '  HostName 127.0.0.1',
        '  Port 2201',
        '  User vm',
        '  IdentityFile "/my dir/key"',
        '  IdentitiesOnly yes',
        '  UserKnownHostsFile /p/.vm/machines/default/known_hosts',
        '  HostKeyAlias vm-0123456789abcdef',
        '  StrictHostKeyChecking yes',
        '  PasswordAuthentication no',
        '  LogLevel ERROR',
        '  ForwardAgent no',
        '',
      ].join('\n'),
    )
  })
})
