import {spawnSync} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {renderSshConfig, sshArgs} from '../../src/ssh/options.js'
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
      writeFileSync(config, renderSshConfig('web', {...target, identityFile: file}))
      const options = sshG(['-F', config, 'web'])
      // ssh -G shows file options before %-token expansion, so % stays doubled.
      expect(options.get('identityfile')).toBe(file.replaceAll('%', '%%'))
      expect(options.get('user')).toBe('vm')
      expect(options.get('hostname')).toBe('127.0.0.1')
      expect(options.has('proxycommand')).toBe(false)
    })

    it(`-o arguments: IdentityFile ${JSON.stringify(file)}`, () => {
      const options = sshG(['-F', '/dev/null', ...sshArgs({...target, identityFile: file})])
      expect(options.get('identityfile')).toBe(file.replaceAll('%', '%%'))
      expect(options.get('port')).toBe('2201')
    })
  }
})
