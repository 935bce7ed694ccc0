import {describe, expect, it} from 'vitest'

import {renderSshConfig, sshArgs} from '../../src/ssh/options.js'
import {sampleTarget} from '../helpers/ssh-target.js'

const target = sampleTarget

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

  it('refuses a user name that would inject a directive, and writes no ProxyCommand line', () => {
    const hostile = {...target, user: 'vm\n  ProxyCommand touch /tmp/x'}
    let config = ''
    expect(() => (config = renderSshConfig('web', hostile))).toThrow(/Cannot write the SSH User "vm\\n {2}ProxyCommand touch \/tmp\/x"/)
    expect(config.split('\n').some((line) => /^\s*ProxyCommand/i.test(line))).toBe(false)
    expect(() => sshArgs(hostile)).toThrow(/control character/)
  })

  it('refuses users, hosts and aliases ssh would read as something else', () => {
    for (const user of ['vm ProxyCommand=x', 'vm"x', '-oProxyCommand=x', '#vm', 'a%h', '']) {
      expect(() => renderSshConfig('web', {...target, user}), user).toThrow(/Cannot write the SSH User/)
    }
    expect(() => renderSshConfig('web', {...target, host: '-oProxyCommand=x'})).toThrow(/SSH HostName/)
    expect(() => renderSshConfig('web\n  ProxyCommand x', target)).toThrow(/SSH Host alias/)
    expect(() => renderSshConfig('web *', target)).toThrow(/SSH Host alias/)
    expect(() => renderSshConfig('web', {...target, identityFile: '/p/${HOME}/key'})).toThrow(/expand/)
    expect(() => renderSshConfig('web', {...target, identityFile: '/p/\u001B[2J/key'})).toThrow(/control character/)
  })

  it('quotes paths with quotes, backslashes, # and %, as OpenSSH splits arguments', () => {
    const config = renderSshConfig('web', {...target, identityFile: `/a "b" c\\d/#e/it's/100%/key`})
    expect(config).toContain(`  IdentityFile "/a \\"b\\" c\\\\d/#e/it's/100%%/key"`)
  })
})
