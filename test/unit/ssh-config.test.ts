import {spawnSync} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {renderSshConfig, sshArgs, type JumpHost} from '../../src/ssh/options.js'
import {sampleTarget} from '../helpers/ssh-target.js'

const target = sampleTarget

/** What OpenSSH itself makes of options (ssh -G parses and prints them; it connects nowhere). */
function sshG(args: string[]): Map<string, string> {
  const result = spawnSync('ssh', ['-G', ...args], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  expect(result.status, result.stderr).toBe(0)
  const options = new Map<string, string>()
  for (const line of result.stdout.split('\n')) {
    const space = line.indexOf(' ')
    if (space > 0) options.set(line.slice(0, space), line.slice(space + 1))
  }
  return options
}

const awkwardPaths = [
  '/my project/key',
  '/a "quoted" dir/key',
  "/it's/key",
  '/back\\slash/key',
  '/#hash/key',
  '/100% done/key',
  '/tab\u00e9/ünï/key',
]

describe('ssh reads back exactly the values vm writes', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-ssh-config-'))

  for (const file of awkwardPaths) {
    it(`ssh_config: IdentityFile ${JSON.stringify(file)}`, () => {
      const config = path.join(dir, 'config')
      writeFileSync(config, renderSshConfig('web', {...target, identityFiles: [file]}))
      const options = sshG(['-F', config, 'web'])
      // ssh -G shows file options before %-token expansion, so % stays doubled.
      expect(options.get('identityfile')).toBe(file.replaceAll('%', '%%'))
      expect(options.get('user')).toBe('vm')
      expect(options.get('hostname')).toBe('127.0.0.1')
      expect(options.has('proxycommand')).toBe(false)
    })

    it(`-o arguments: IdentityFile ${JSON.stringify(file)}`, () => {
      const options = sshG(['-F', '/dev/null', ...sshArgs({...target, identityFiles: [file]})])
      expect(options.get('identityfile')).toBe(file.replaceAll('%', '%%'))
      expect(options.get('port')).toBe('2201')
    })
  }

  // ssh -G prints the jump as it parsed it (user, host, port), bracketing addresses.
  const jumps: Array<[JumpHost, string]> = [
    [{host: 'libvirt.example.org', port: 2222, user: 'ops'}, 'ops@libvirt.example.org:2222'],
    [{host: 'gw'}, 'gw'],
    [{host: 'fd00::1', port: 22, user: 'ops'}, 'ops@[fd00::1]:22'],
    [{host: '10.0.0.1', port: 22}, '[10.0.0.1]:22'],
    [{host: 'none', port: 22}, 'none:22'],
  ]
  for (const [jump, parsed] of jumps) {
    it(`ssh_config and -o arguments: ProxyJump ${JSON.stringify(jump)}`, () => {
      const guest = {...target, host: '192.168.122.10', jump}
      const config = path.join(dir, 'config')
      writeFileSync(config, renderSshConfig('web', guest))
      for (const options of [sshG(['-F', config, 'web']), sshG(['-F', '/dev/null', ...sshArgs(guest)])]) {
        expect(options.get('proxyjump')).toBe(parsed)
        expect(options.get('hostname')).toBe('192.168.122.10')
        expect(options.get('port')).toBe('2201')
        expect(options.has('proxycommand')).toBe(false)
      }
    })
  }
})
