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
    const args = sshArgs({...target, identityFiles: ['/my project/.vm/key'], knownHostsFile: '/100% done/known_hosts'})
    expect(args).toContain('IdentityFile="/my project/.vm/key"')
    expect(args).toContain('UserKnownHostsFile="/100%% done/known_hosts"')
  })

  it('renders an ssh_config Host block', () => {
    expect(renderSshConfig('web', {...target, identityFiles: ['/my dir/key']})).toBe(
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
    expect(() => renderSshConfig('web', {...target, identityFiles: ['/p/${HOME}/key']})).toThrow(/expand/)
    expect(() => renderSshConfig('web', {...target, identityFiles: ['/p/\u001B[2J/key']})).toThrow(/control character/)
  })

  it('quotes paths with quotes, backslashes, # and %, as OpenSSH splits arguments', () => {
    const config = renderSshConfig('web', {...target, identityFiles: [`/a "b" c\\d/#e/it's/100%/key`]})
    expect(config).toContain(`  IdentityFile "/a \\"b\\" c\\\\d/#e/it's/100%%/key"`)
  })

  describe('through a jump host', () => {
    const jump = {host: 'libvirt.example.org', port: 2222, user: 'ops'}

    it('renders ProxyJump user@host:port as an -o option and as a config line', () => {
      const args = sshArgs({...target, host: '192.168.122.10', jump}, {batch: true})
      expect(args).toContain('ProxyJump=ops@libvirt.example.org:2222')
      expect(args.at(-1)).toBe('192.168.122.10')
      expect(renderSshConfig('web', {...target, host: '192.168.122.10', jump})).toContain(
        '  HostName 192.168.122.10\n  Port 2201\n  ProxyJump ops@libvirt.example.org:2222\n',
      )
    })

    it('leaves out the parts it is not given, and brackets an IPv6 address', () => {
      expect(sshArgs({...target, jump: {host: 'gw'}})).toContain('ProxyJump=gw')
      expect(sshArgs({...target, jump: {host: 'gw', user: 'ops'}})).toContain('ProxyJump=ops@gw')
      expect(sshArgs({...target, jump: {host: '10.0.0.1', port: 22}})).toContain('ProxyJump=10.0.0.1:22')
      expect(sshArgs({...target, jump: {host: 'fd00::1', port: 22, user: 'ops'}})).toContain('ProxyJump=ops@[fd00::1]:22')
      expect(sshArgs({...target, jump: {host: '::1'}})).toContain('ProxyJump=[::1]')
    })

    it("goes through vm's shared connection to the jump host when there is one (ProxyCommand ssh -W over its control socket)", () => {
      const shared = {...jump, controlPath: '/run/vmfile/libvirt/0123abcd.ssh'}
      const command =
        'ssh -o ControlMaster=no -o ControlPath=/run/vmfile/libvirt/0123abcd.ssh -l ops -p 2222 -W "[%h]:%p" -- libvirt.example.org'
      const args = sshArgs({...target, host: '192.168.122.10', jump: shared})
      expect(args).toContain(`ProxyCommand=${command}`)
      expect(args.some((arg) => arg.startsWith('ProxyJump'))).toBe(false)
      expect(renderSshConfig('web', {...target, host: '192.168.122.10', jump: shared})).toContain(`  ProxyCommand ${command}\n`)
      // A control path ssh or the shell would read as something else is not used: plain ProxyJump.
      for (const controlPath of ['/run/a b/x.ssh', '/run/%h/x.ssh', "/run/it's/x.ssh", 'relative.ssh'])
        expect(sshArgs({...target, jump: {...jump, controlPath}})).toContain('ProxyJump=ops@libvirt.example.org:2222')
      // The user, host and port are checked as for ProxyJump.
      expect(() => sshArgs({...target, jump: {...shared, user: 'ops;id'}})).toThrow(/SSH ProxyJump user/)
      expect(() => sshArgs({...target, jump: {...shared, host: '-oProxyCommand=x'}})).toThrow(/SSH ProxyJump host/)
    })

    it('writes no ProxyJump without a jump host', () => {
      expect(sshArgs({...target, jump: undefined}).some((arg) => arg.startsWith('ProxyJump'))).toBe(false)
      expect(renderSshConfig('web', target)).not.toMatch(/ProxyJump/i)
    })

    it('refuses jump users, hosts and ports ssh would read as something else', () => {
      const refused = (value: {host: string; port?: number; user?: string}, what: RegExp) => {
        expect(() => sshArgs({...target, jump: value}), JSON.stringify(value)).toThrow(what)
        expect(() => renderSshConfig('web', {...target, jump: value}), JSON.stringify(value)).toThrow(what)
      }
      // ssh runs the jump as a shell command line "ssh -l USER -p PORT -W ... HOST": no shell syntax may pass.
      for (const user of ['ops;touch /tmp/x', 'ops x', 'a@b', '-oProxyCommand=x', 'ops\nProxyCommand x', '$(id)', '']) {
        refused({host: 'gw', user}, /Cannot write the SSH ProxyJump user/)
      }
      // A comma starts a second jump host, "#" a comment, "%" a token; "-" an option.
      for (const host of ['gw,evil', 'gw#x', '-oProxyCommand=x', 'gw x', 'a%h', 'gw\n  ProxyCommand x', '`id`', '', '[::1]', 'ops@gw']) {
        refused({host}, /Cannot write the SSH ProxyJump host/)
      }
      for (const port of [0, 65536, 22.5, -1, Number.NaN]) refused({host: 'gw', port}, /Cannot write the SSH ProxyJump port/)
      // "none" alone means no jump host at all to ssh.
      refused({host: 'none'}, /ProxyJump/)
      refused({host: 'NONE'}, /ProxyJump/)
      expect(sshArgs({...target, jump: {host: 'none', port: 22}})).toContain('ProxyJump=none:22')
    })
  })
})
