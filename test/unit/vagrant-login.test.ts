import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {execFileSync} from 'node:child_process'

import type {UserError, VmError} from '../../src/errors/errors.js'
import type {MachineRecord} from '../../src/machine/record.js'
import {loginUser} from '../../src/machine/ssh-target.js'
import {firstDiskMiB} from '../../src/machine/up-prepare.js'
import {insecureKeyPairs} from '../../src/ssh/keys.js'
import {renderSshConfig, sshArgs} from '../../src/ssh/options.js'
import {keyRefused} from '../../src/ssh/wait.js'
import {loadProject} from '../../src/vmfile/index.js'
import {sampleTarget} from '../helpers/ssh-target.js'

/** Vagrant-style logins: the Vmfile's ssh settings, the keys offered, the user, the messages. */

function project(vmfile: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-unit-login-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), {recursive: true})
    writeFileSync(path.join(dir, name), text)
  }
  writeFileSync(path.join(dir, 'Vmfile'), vmfile)
  return dir
}

function problems(dir: string): string[] {
  try {
    loadProject(dir)
  } catch (error) {
    return (error as VmError).details
  }
  throw new Error('the Vmfile was accepted')
}

describe("Vmfile ssh: Vagrant's settings", () => {
  it('username is user as Vagrant spells it; a machine overrides the top level either way', () => {
    const dir = project(
      'box: a/b\nssh: {username: builder}\nmachines:\n  web: {}\n  db:\n    ssh: {user: postgres}\n  app:\n    ssh: {username: app}\n',
    )
    const users = loadProject(dir).machines.map((machine) => [machine.name, machine.ssh.user])
    expect(users).toEqual([
      ['web', 'builder'],
      ['db', 'postgres'],
      ['app', 'app'],
    ])
  })

  it('user and username both set is a located error', () => {
    const dir = project('box: a/b\nssh:\n  user: a\n  username: b\n')
    expect(problems(dir)).toEqual([expect.stringMatching(/^Vmfile:4:13 ssh\.username: is set together with "user": .*keep one/)])
  })

  it('private_key_path: one path or a list, relative to the Vmfile; insert_key defaults to true', () => {
    const one = project('box: a/b\nssh: {private_key_path: keys/one}\n', {'keys/one': 'k'})
    expect(loadProject(one).machines[0]!.ssh).toMatchObject({privateKeyPaths: [path.join(one, 'keys/one')], insertKey: true})
    const two = project('box: a/b\nssh:\n  private_key_path: [keys/one, /etc/hostname]\n  insert_key: false\n', {'keys/one': 'k'})
    expect(loadProject(two).machines[0]!.ssh).toMatchObject({
      privateKeyPaths: [path.join(two, 'keys/one'), '/etc/hostname'],
      insertKey: false,
    })
    expect(loadProject(project('box: a/b\n')).machines[0]!.ssh).toMatchObject({privateKeyPaths: undefined, insertKey: true})
  })

  it('a private_key_path that does not exist, or is a directory, is a located error', () => {
    const dir = project(
      'box: a/b\nssh:\n  private_key_path:\n    - keys/gone\n    - keys\nmachines:\n  web:\n    ssh: {private_key_path: nope}\n',
      {
        'keys/real': 'k',
      },
    )
    expect(problems(dir)).toEqual([
      `Vmfile:4:7 ssh.private_key_path[0]: the key "keys/gone" does not exist (relative paths start at the Vmfile's directory)`,
      'Vmfile:5:7 ssh.private_key_path[1]: "keys" is not a file: name a private key file',
      `Vmfile:8:29 machines.web.ssh.private_key_path: the key "nope" does not exist (relative paths start at the Vmfile's directory)`,
    ])
  })

  it('password is refused, saying why and what to do instead', () => {
    expect(problems(project('box: a/b\nssh: {password: vagrant}\n'))).toEqual([
      expect.stringMatching(
        /^Vmfile:2:17 ssh\.password: is not supported: vm logs in with SSH keys only; .*authorized_keys.*ssh\.private_key_path/,
      ),
    ])
  })

  it('the JSON schema for editors knows the new keys', () => {
    const schema = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../schema/vmfile.schema.json'), 'utf8'))
    const ssh = schema.properties.ssh.properties
    expect(Object.keys(ssh)).toEqual(expect.arrayContaining(['user', 'username', 'private_key_path', 'insert_key', 'password']))
    expect(ssh.insert_key.default).toBe(true)
  })
})

describe('first-login keys and user', () => {
  it("Vagrant's published insecure keys ship beside vm's, and their .pub files match the private keys", () => {
    const pairs = insecureKeyPairs()
    expect(pairs.map((pair) => path.basename(pair.privateKey))).toEqual([
      'vmfile_insecure_key',
      'vagrant_insecure_key_ed25519',
      'vagrant_insecure_key_rsa',
    ])
    for (const pair of pairs) {
      const dir = mkdtempSync(path.join(tmpdir(), 'vm-unit-key-'))
      const copy = path.join(dir, 'key')
      writeFileSync(copy, readFileSync(pair.privateKey), {mode: 0o600})
      const derived = execFileSync('ssh-keygen', ['-y', '-f', copy], {encoding: 'utf8'}).trim().split(' ').slice(0, 2).join(' ')
      expect(readFileSync(pair.publicKey, 'utf8')).toContain(derived)
    }
    // The RSA key is the one Vagrant has always shipped (Debian's vagrant package carries it too).
    expect(readFileSync(pairs[2]!.publicKey, 'utf8')).toContain('AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7')
    expect(readFileSync(pairs[1]!.publicKey, 'utf8')).toContain('AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y')
  })

  it("the login user: the Vmfile's, else the box's ssh_user, else vagrant", () => {
    const record = (user: string | undefined, sshUser: string | undefined) =>
      ({config: {ssh: {user}}, box: {sshUser}}) as unknown as MachineRecord
    expect(loginUser(record(undefined, undefined))).toBe('vagrant')
    expect(loginUser(record(undefined, 'vm'))).toBe('vm')
    expect(loginUser(record('root', 'vm'))).toBe('root')
  })

  it('ssh offers every key, in order, as ssh arguments and in vm ssh-config', () => {
    const target = {...sampleTarget, identityFiles: ['/k/one', '/k/two words']}
    const args = sshArgs(target)
    expect(args.filter((arg) => arg.startsWith('IdentityFile='))).toEqual(['IdentityFile=/k/one', 'IdentityFile="/k/two words"'])
    expect(renderSshConfig('web', target)).toContain('  IdentityFile /k/one\n  IdentityFile "/k/two words"\n  IdentitiesOnly yes\n')
    expect(() => sshArgs({...sampleTarget, identityFiles: []})).toThrow(/no key/)
  })
})

describe('a guest that refuses every key', () => {
  it('names the user and every key tried, says what to set, and points at no missing file', () => {
    const keys = insecureKeyPairs().map((pair) => pair.privateKey)
    const error = keyRefused({...sampleTarget, user: 'vagrant'}, keys, 'vagrant@127.0.0.1: Permission denied (publickey).\n') as UserError
    expect(error.code).toBe('SSH_KEY_REFUSED')
    expect(error.message).toContain('user vagrant')
    expect(error.details).toEqual(expect.arrayContaining(keys.map((key) => `  ${key}`)))
    expect(error.hint).toContain('ssh.user')
    expect(error.hint).toContain('ssh.private_key_path')
    expect(`${error.message} ${error.hint}`).not.toMatch(/destroy|\.pub\b/)
  })
})

describe("the box's virtual_size", () => {
  it('the first disk is the larger of the Vmfile disk and virtual_size (GB read as GiB)', () => {
    expect(firstDiskMiB(undefined, undefined)).toBeUndefined()
    expect(firstDiskMiB(undefined, 2)).toBe(2048)
    expect(firstDiskMiB(4096, 2)).toBe(4096)
    expect(firstDiskMiB(1024, 2)).toBe(2048)
    expect(firstDiskMiB(1024, 1.5)).toBe(1536)
    expect(firstDiskMiB(700, undefined)).toBe(700)
  })
})
