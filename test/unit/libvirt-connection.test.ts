import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {sharesSshConnection, withSshCommand} from '../../src/driver/libvirt/uri.js'
import {connectionUri, sharedConnectionFiles, sshWrapperScript, Virsh} from '../../src/driver/libvirt/virsh.js'

describe('which libvirt URIs share one ssh connection', () => {
  it('shares the ssh transport only, and never overrides a command= of the user', () => {
    expect(sharesSshConnection('qemu+ssh://root@build-3/system')).toBe(true)
    expect(sharesSshConnection('qemu+ssh://build-3:2222/system?keyfile=/k&no_verify=1')).toBe(true)
    expect(sharesSshConnection('qemu+ssh://build-3/system?command=/opt/bin/ssh')).toBe(false)
    expect(sharesSshConnection('qemu+ssh://build-3/system?no_tty=1&comm%61nd=/opt/ssh')).toBe(false)
    for (const uri of ['qemu:///system', 'qemu+unix:///system', 'qemu+libssh2://h/system', 'qemu+tcp://h/system', 'qemu+ssh:///system'])
      expect(sharesSshConnection(uri), uri).toBe(false)
  })

  it('adds command= to the query, keeping what the URI had', () => {
    expect(withSshCommand('qemu+ssh://root@h/system', '/run/vm/libvirt/ssh-ab')).toBe(
      'qemu+ssh://root@h/system?command=/run/vm/libvirt/ssh-ab',
    )
    expect(withSshCommand('qemu+ssh://h/system?keyfile=/k', '/r/ssh-ab')).toBe('qemu+ssh://h/system?keyfile=/k&command=/r/ssh-ab')
    expect(withSshCommand('qemu+ssh://h/system?', '/r/ssh-ab')).toBe('qemu+ssh://h/system?command=/r/ssh-ab')
    // A path libvirt would have to unescape is not used.
    expect(withSshCommand('qemu+ssh://h/system', '/tmp/my dir/ssh-ab')).toBeUndefined()
    expect(withSshCommand('qemu+ssh://h/system', '/tmp/a&b/ssh-ab')).toBeUndefined()
  })

  it('names one control socket per URI, short enough for a Unix socket', () => {
    const a = sharedConnectionFiles('/run/user/0/vmfile/libvirt', 'qemu+ssh://root@a/system')!
    const b = sharedConnectionFiles('/run/user/0/vmfile/libvirt', 'qemu+ssh://root@b/system')!
    expect(a.controlPath).not.toBe(b.controlPath)
    expect(path.dirname(a.wrapper)).toBe('/run/user/0/vmfile/libvirt')
    expect(sharedConnectionFiles(`/tmp/${'x'.repeat(80)}`, 'qemu+ssh://root@a/system')).toBeUndefined()
  })
})

describe('virsh over a shared ssh connection (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-libvirt-conn-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const env = {...process.env, VM_RUNTIME_DIR: path.join(dir, 'run'), PATH: `${dir}/bin:${process.env.PATH ?? ''}`}

  it('the wrapper runs ssh from PATH with ControlMaster on its socket, then the arguments libvirt gives', () => {
    spawnSync('mkdir', ['-p', `${dir}/bin`])
    // A stand-in ssh that prints what it was given.
    writeFileSync(`${dir}/bin/ssh`, '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n', {mode: 0o755})
    const wrapper = path.join(dir, 'wrapper')
    writeFileSync(wrapper, sshWrapperScript("/tmp/it's here/x.sock"), {mode: 0o700})
    const result = spawnSync(wrapper, ['-p', '22', '-T', '--', 'host', 'sh', '-c', 'echo "$x"'], {env, encoding: 'utf8'})
    expect(result.status).toBe(0)
    const args = result.stdout.trimEnd().split('\n')
    expect(args).toContain('ControlMaster=auto')
    expect(args).toContain(`ControlPath="/tmp/it's here/x.sock"`)
    expect(args.some((arg) => arg.startsWith('ControlPersist='))).toBe(true)
    expect(args.slice(-8)).toEqual(['-p', '22', '-T', '--', 'host', 'sh', '-c', 'echo "$x"'])
  })

  it('virsh gets the URI with the wrapper (written private to the user); messages keep the URI as written', async () => {
    const recorded = path.join(dir, 'virsh-args')
    const virsh = path.join(dir, 'virsh')
    writeFileSync(
      virsh,
      `#!/bin/sh\nprintf "%s\\n" "$@" > '${recorded}'\necho "error: failed to connect to the hypervisor" >&2\nexit 1\n`,
      {
        mode: 0o755,
      },
    )
    const uri = 'qemu+ssh://root@10.9.8.7/system?keyfile=/k'
    const saved = {...process.env}
    Object.assign(process.env, {VM_VIRSH: virsh, VM_RUNTIME_DIR: env.VM_RUNTIME_DIR})
    try {
      const error = await new Virsh(uri).run(['domstate', 'x'], {doing: 'read a state'}).catch((caught: unknown) => caught as Error)
      expect(error.message).toContain(`(${uri})`)
      expect(error.message).not.toContain('command=')
    } finally {
      for (const key of ['VM_VIRSH', 'VM_RUNTIME_DIR']) if (saved[key] === undefined) delete process.env[key]
      Object.assign(process.env, saved)
    }
    const given = readFileSync(recorded, 'utf8').split('\n')
    const shared = await connectionUri(uri, env)
    expect(shared).toMatch(/^qemu\+ssh:\/\/root@10\.9\.8\.7\/system\?keyfile=\/k&command=\/.*\/libvirt\/ssh-[0-9a-f]{16}$/)
    expect(given.slice(0, 4)).toEqual(['-q', '-c', shared, 'domstate'])
    const wrapper = shared.slice(shared.indexOf('command=') + 'command='.length)
    expect(statSync(wrapper).mode & 0o777).toBe(0o700)
    expect(statSync(path.dirname(wrapper)).mode & 0o777).toBe(0o700)
    expect(readFileSync(wrapper, 'utf8')).toContain('ControlMaster=auto')
    // A local URI goes to virsh as it is.
    expect(await connectionUri('qemu:///system', env)).toBe('qemu:///system')
  })
})
