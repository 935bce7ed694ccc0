import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {tunnelCommands, tunnelFiles, tunnelledUri} from '../../src/driver/libvirt/tunnel.js'
import {sshTunnelPlan, SYSTEM_SOCKET} from '../../src/driver/libvirt/uri.js'
import {Virsh} from '../../src/driver/libvirt/virsh.js'

describe('which libvirt URIs vm reaches through its shared ssh connection', () => {
  it('logs in as libvirt would: the URI user, port and keyfile, the daemon socket of /system or socket=', () => {
    expect(sshTunnelPlan('qemu+ssh://root@build-3/system')).toEqual({
      destination: 'build-3',
      loginOptions: ['-l', 'root'],
      remoteSocket: SYSTEM_SOCKET,
    })
    expect(sshTunnelPlan('qemu+ssh://ops@[fd00::2]:2222/system?keyfile=/home/ops/.ssh/lv&socket=/run/libvirt/virtqemud-sock')).toEqual({
      destination: 'fd00::2',
      loginOptions: ['-p', '2222', '-l', 'ops', '-i', '/home/ops/.ssh/lv'],
      remoteSocket: '/run/libvirt/virtqemud-sock',
    })
    expect(sshTunnelPlan('qemu+ssh://h/system?no_verify=1&no_tty=1')?.loginOptions).toEqual(['-o', 'StrictHostKeyChecking=no'])
  })

  it('leaves every other URI to virsh as written', () => {
    for (const uri of [
      'qemu:///system',
      'qemu+unix:///system?socket=/run/x',
      'qemu+ssh://h/session',
      'qemu+libssh2://h/system',
      'qemu+tcp://h/system',
      'lxc+ssh://h/system',
      'qemu+ssh://h/system?command=/opt/bin/ssh',
      'qemu+ssh://h/system?proxy=native',
      'qemu+ssh://h/system?netcat=/bin/nc',
      'qemu+ssh://-oProxyCommand=x/system',
    ])
      expect(sshTunnelPlan(uri), uri).toBeUndefined()
  })

  it('names one control socket and one forwarded socket per URI, short enough for a Unix socket', () => {
    const a = tunnelFiles('/run/user/0/vmfile/libvirt', 'qemu+ssh://root@a/system')!
    const b = tunnelFiles('/run/user/0/vmfile/libvirt', 'qemu+ssh://root@b/system')!
    expect(a.control).not.toBe(b.control)
    expect(a.socket).not.toBe(a.control)
    expect(path.dirname(a.socket)).toBe('/run/user/0/vmfile/libvirt')
    expect(tunnelFiles(`/tmp/${'x'.repeat(80)}`, 'qemu+ssh://root@a/system')).toBeUndefined()
    expect(tunnelledUri(a.socket)).toBe(`qemu+unix:///system?socket=${a.socket}`)
  })

  it('shares the master, never asks for a password, forwards the socket and checks the daemon socket on login', () => {
    const plan = sshTunnelPlan("qemu+ssh://root@h:2200/system?socket=/run/it's/sock")!
    const commands = tunnelCommands(plan, {control: '/r/k.ssh', socket: '/r/k.sock'})
    for (const args of Object.values(commands)) {
      expect(args.join(' ')).toContain('-o ControlMaster=auto -o ControlPath=/r/k.ssh -o ControlPersist=')
      expect(args).toContain('BatchMode=yes')
    }
    expect(commands.check.slice(-3)).toEqual(['-O', 'check', 'h'])
    expect(commands.forward.slice(-5)).toEqual(['-O', 'forward', '-L', "/r/k.sock:/run/it's/sock", 'h'])
    expect(commands.open.slice(-3)).toEqual(['--', 'h', "test -S '/run/it'\\''s/sock'"])
    expect(commands.open).toEqual(expect.arrayContaining(['-p', '2200', '-l', 'root']))
  })
})

describe('virsh errors through the shared connection', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-libvirt-conn-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))

  it('a host that cannot be reached is reported with the URI as written (virsh was given that URI)', async () => {
    const recorded = path.join(dir, 'virsh-args')
    const virsh = path.join(dir, 'virsh')
    writeFileSync(
      virsh,
      `#!/bin/sh\nprintf "%s\\n" "$@" >> '${recorded}'\necho "error: failed to connect to the hypervisor" >&2\nexit 1\n`,
      {
        mode: 0o755,
      },
    )
    // The host does not answer ssh either: no tunnel is made, virsh gets the URI itself.
    const uri = 'qemu+ssh://root@127.0.0.1:1/system?keyfile=/nonexistent'
    const saved = {...process.env}
    Object.assign(process.env, {VM_VIRSH: virsh, VM_RUNTIME_DIR: path.join(dir, 'run')})
    try {
      const error: unknown = await new Virsh(uri).run(['domstate', 'x'], {doing: 'read a state'}).then(
        () => undefined,
        (caught: unknown) => caught,
      )
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).message).toContain(`(${uri})`)
    } finally {
      for (const key of ['VM_VIRSH', 'VM_RUNTIME_DIR']) if (saved[key] === undefined) delete process.env[key]
      Object.assign(process.env, saved)
    }
    expect(readFileSync(recorded, 'utf8').split('\n').slice(0, 4)).toEqual(['-q', '-c', uri, 'domstate'])
  })
})
