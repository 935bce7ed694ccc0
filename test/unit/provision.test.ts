import {describe, expect, it} from 'vitest'

import {renderInventory} from '../../src/provision/ansible.js'
import {selectProvisioners} from '../../src/provision/index.js'
import {remoteShellCommand, shellQuote} from '../../src/provision/shell.js'
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

describe('ansible inventory', () => {
  it('uses the machine SSH settings', () => {
    const inventory = renderInventory('web', {
      host: '127.0.0.1',
      port: 2201,
      user: 'vm',
      identityFile: '/p/key',
      knownHostsFile: '/p/known_hosts',
      hostKeyAlias: 'vm-1',
      strictHostKeyChecking: 'yes',
    })
    expect(inventory).toContain('web ansible_host=127.0.0.1 ansible_port=2201 ansible_user=vm ansible_ssh_private_key_file=/p/key')
    expect(inventory).toContain('-o UserKnownHostsFile=/p/known_hosts -o HostKeyAlias=vm-1')
  })
})
