import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {ansibleArgs, renderInventory, runAnsible} from '../../src/provision/ansible.js'
import {selectProvisioners} from '../../src/provision/index.js'
import {remoteShellCommand, shellQuote} from '../../src/provision/shell.js'
import type {SshTarget} from '../../src/ssh/options.js'
import type {Provisioner} from '../../src/vmfile/types.js'

const shell = (name: string, run: 'always' | 'never' | 'once'): Provisioner => ({
  type: 'shell',
  name,
  run,
  inline: 'true',
  path: undefined,
  args: [],
  env: {},
  privileged: true,
  uploadPath: '/tmp/vm-shell',
})
const all = [shell('a', 'once'), shell('b', 'always'), shell('c', 'never')]

describe('which provisioners run', () => {
  it('first provisioning and vm provision: once and always; a later up: always only', () => {
    expect(selectProvisioners(all, 'first').map((p) => p.name)).toEqual(['a', 'b'])
    expect(selectProvisioners(all, 'forced').map((p) => p.name)).toEqual(['a', 'b'])
    expect(selectProvisioners(all, 'up').map((p) => p.name)).toEqual(['b'])
  })

  it('--provision-with names them, never ones included, and rejects unknown names', () => {
    expect(selectProvisioners(all, 'up', ['c', 'a']).map((p) => p.name)).toEqual(['a', 'c'])
    expect(selectProvisioners(all, 'up', ['shell']).map((p) => p.name)).toEqual(['a', 'b', 'c'])
    expect(() => selectProvisioners(all, 'up', ['x'])).toThrow('No provisioner named "x"')
  })
})

describe('shell provisioner command', () => {
  it('stores the script, then runs it through sudo with env and quoted args', () => {
    const command = remoteShellCommand({
      ...(shell('s', 'once') as Extract<Provisioner, {type: 'shell'}>),
      args: ["it's", 'two words'],
      env: {A: 'x y'},
    })
    expect(command).toBe(
      "cat > '/tmp/vm-shell' && chmod 0755 '/tmp/vm-shell' && cd ~ && sudo -n env A='x y' /tmp/vm-shell 'it'\\''s' 'two words'",
    )
  })

  it('quotes for a POSIX shell', () => {
    expect(shellQuote("a'b")).toBe("'a'\\''b'")
  })
})

const target: SshTarget = {
  host: '127.0.0.1',
  port: 2201,
  user: 'vm',
  identityFiles: ['/p/key'],
  knownHostsFile: '/p/known_hosts',
  hostKeyAlias: 'vm-1',
  strictHostKeyChecking: 'yes',
}

describe('ansible inventory', () => {
  it('uses the machine SSH settings', () => {
    const inventory = renderInventory('web', target)
    expect(inventory).toContain('web ansible_host=127.0.0.1 ansible_port=2201 ansible_user=vm ansible_ssh_private_key_file=/p/key')
    expect(inventory).toContain('-o UserKnownHostsFile=/p/known_hosts -o HostKeyAlias=vm-1')
  })

  it('quotes paths with spaces and quotes twice: for the INI line and for the ssh arguments', () => {
    const inventory = renderInventory('web', {...target, identityFiles: ["/my p/it's key"], knownHostsFile: '/my p/known_hosts'})
    // What `ansible-inventory -i FILE --list` (ansible-core 2.14) reads back from this line:
    // ansible_ssh_private_key_file "/my p/it's key", ansible_ssh_common_args
    // "-o 'UserKnownHostsFile=/my p/known_hosts' -o HostKeyAlias=vm-1 ...".
    expect(inventory).toContain(String.raw`ansible_ssh_private_key_file='/my p/it'\''s key'`)
    expect(inventory).toContain(String.raw`ansible_ssh_common_args='-o '\''UserKnownHostsFile=/my p/known_hosts'\'' -o HostKeyAlias=vm-1`)
  })

  it('passes a jump host on to ssh, and refuses one ssh would read as something else', () => {
    const jumped = {...target, host: '192.168.122.10', jump: {host: 'gw.example.org', port: 2222, user: 'ops'}}
    expect(renderInventory('web', jumped)).toContain('web ansible_host=192.168.122.10 ')
    expect(renderInventory('web', jumped)).toMatch(/ansible_ssh_common_args='[^']* -o ProxyJump=ops@gw\.example\.org:2222'$/m)
    // Brackets are quoted for Ansible's splitting, which reads back: -o 'ProxyJump=[fd00::7]'.
    expect(renderInventory('web', {...target, jump: {host: 'fd00::7'}})).toContain(String.raw`-o '\''ProxyJump=[fd00::7]'\'''`)
    expect(renderInventory('web', target)).not.toContain('ProxyJump')
    expect(() => renderInventory('web', {...target, jump: {host: 'gw', user: 'ops;id'}})).toThrow(/Cannot write the SSH ProxyJump user/)
  })
})

describe('ansible provisioner', () => {
  const ansible = (extra: Partial<Extract<Provisioner, {type: 'ansible'}>> = {}): Extract<Provisioner, {type: 'ansible'}> => ({
    type: 'ansible',
    name: 'play',
    run: 'once',
    playbook: 'site.yml',
    extraVars: {},
    become: false,
    ...extra,
  })
  let project: string | undefined

  afterEach(() => {
    vi.unstubAllEnvs()
    if (project !== undefined) rmSync(project, {recursive: true, force: true})
    project = undefined
  })

  it('passes extra vars as JSON and --become only when asked', () => {
    expect(ansibleArgs(ansible(), '/s/inv', '/p/site.yml')).toEqual(['-i', '/s/inv', '/p/site.yml'])
    expect(ansibleArgs(ansible({extraVars: {a: 1}, become: true}), '/s/inv', '/p/site.yml')).toEqual([
      '-i',
      '/s/inv',
      '/p/site.yml',
      '--extra-vars',
      '{"a":1}',
      '--become',
    ])
  })

  const context = (dir: string) => ({
    target,
    projectDir: dir,
    machine: 'default',
    stateDir: dir,
    onStdout: () => {},
    onStderr: () => {},
  })

  it('says so when ansible-playbook is not installed', async () => {
    project = mkdtempSync(path.join(tmpdir(), 'vm-unit-ansible-'))
    writeFileSync(path.join(project, 'site.yml'), '- hosts: all\n')
    vi.stubEnv('PATH', project)
    await expect(runAnsible(ansible(), context(project))).rejects.toMatchObject({
      code: 'ANSIBLE_MISSING',
      message: 'Provisioner "play" (ansible) needs ansible-playbook, which is not installed on this host',
    })
  })

  it('names a missing playbook before running anything', async () => {
    project = mkdtempSync(path.join(tmpdir(), 'vm-unit-ansible-'))
    await expect(runAnsible(ansible({playbook: 'missing.yml'}), context(project))).rejects.toThrow(
      `Provisioner play: the playbook ${path.join(project, 'missing.yml')} does not exist`,
    )
  })
})
