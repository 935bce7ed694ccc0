import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startForwarder, stopForwarder} from '../../src/driver/libvirt/forward.js'
import {resolveForwards} from '../../src/network/forwards.js'
import {leftovers, sshClient, startLibvirtHost, type LibvirtHost, type SshClient} from '../helpers/libvirt-host.js'

/** The pretend libvirt hosts the libvirt tests run against (no VM: the harness itself). */
describe('pretend libvirt hosts', () => {
  let local: LibvirtHost
  let remote: LibvirtHost
  let client: SshClient

  beforeAll(async () => {
    ;[local, remote] = await Promise.all([startLibvirtHost({name: 'lvlocal'}), startLibvirtHost({name: 'lvremote', ssh: true})])
    client = sshClient([remote])
  })

  afterAll(async () => {
    await Promise.all([local?.stop(), remote?.stop()])
    client?.remove()
  })

  const virsh = (uri: string, args: string[]): {status: number; stdout: string; stderr: string} => {
    const result = spawnSync('virsh', ['-c', uri, ...args], {encoding: 'utf8', env: client.env, timeout: 60_000})
    return {status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr}
  }

  it('each runs its own libvirtd, reached through its socket', () => {
    expect(virsh(local.uri, ['hostname'])).toMatchObject({status: 0, stdout: expect.stringMatching(/^lvlocal\n/)})
    expect(virsh(remote.uri, ['hostname'])).toMatchObject({status: 0, stdout: expect.stringMatching(/^lvremote\n/)})
    const uuids = [local, remote].map((host) => /<uuid>(.*)<\/uuid>/.exec(virsh(host.uri, ['capabilities']).stdout)?.[1])
    expect(uuids[0]).toMatch(/^[0-9a-f-]{36}$/)
    expect(uuids[0]).not.toBe(uuids[1])
  })

  it('reaches the remote one over qemu+ssh with the key the harness made', () => {
    expect(remote.sshUri).toBe(`qemu+ssh://root@${remote.address}/system`)
    expect(virsh(remote.sshUri!, ['hostname'])).toMatchObject({status: 0, stdout: expect.stringMatching(/^lvremote\n/)})
    // The config also serves ProxyJump (OpenSSH 9.2's -J ignores -i for the jump host): through
    // the pretend host to its own loopback, the target's options given as vm gives a guest's.
    const target = [
      '-i',
      remote.identity!,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${path.dirname(remote.identity!)}/known_hosts`,
    ]
    const alias = ['-o', `HostKeyAlias=${remote.address}`, '-o', 'BatchMode=yes']
    const jumped = spawnSync('ssh', ['-J', remote.address, ...target, ...alias, 'root@127.0.0.1', 'hostname'], {
      encoding: 'utf8',
      env: client.env,
      timeout: 30_000,
    })
    expect(jumped.stderr).toBe('')
    expect(jumped.stdout).toBe('lvremote\n')
  })

  it('carries a forwarded port through the remote host (the libvirt engine keeper, ssh -N -L)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vmlv-forward-'))
    const path0 = process.env.PATH
    process.env.PATH = client.env.PATH
    try {
      const machine = {name: 'fwd', id: 'lvfwd0001', dir}
      const leases = path.join(dir, 'leases')
      const wanted = [{guest: 22, host: 2299, hostIp: '127.0.0.1', protocol: 'tcp' as const, autoCorrect: true}]
      const forwards = await resolveForwards('fwd', wanted, leases, machine.id, () => {})
      // The namespace's own loopback plays the guest: its sshd answers there.
      await startForwarder(machine, {guest: '127.0.0.1', jump: {host: remote.address, user: 'root'}, forwards}, leases)
      const banner = await new Promise<string>((resolve, reject) => {
        const socket = connect(forwards[0]!.host, '127.0.0.1')
        socket.once('data', (chunk) => {
          socket.destroy()
          resolve(chunk.toString())
        })
        socket.once('error', reject)
      })
      expect(banner).toMatch(/^SSH-2\.0-OpenSSH/)
      await stopForwarder(machine, leases)
    } finally {
      process.env.PATH = path0
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('has a running dir pool named default in its private state directory', () => {
    for (const host of [local, remote]) {
      const info = virsh(host.uri, ['pool-dumpxml', 'default'])
      expect(info.status).toBe(0)
      expect(info.stdout).toContain("<pool type='dir'>")
      expect(info.stdout).toContain('<path>/var/lib/libvirt/images</path>')
      expect(virsh(host.uri, ['pool-info', 'default']).stdout).toMatch(/State:\s+running/)
      const made = virsh(host.uri, ['vol-create-as', 'default', 'probe.qcow2', '1M', '--format', 'qcow2'])
      expect(made.stderr).toBe('')
      expect(existsSync(path.join(host.stateDir, 'images', 'probe.qcow2'))).toBe(true)
    }
  })

  it('starts a NAT network whose namespace has no route to the world', () => {
    const xml = `<network><name>probe</name><forward mode='nat'/><bridge name='vmlvprobe0'/><ip address='192.168.203.1' netmask='255.255.255.0'><dhcp><range start='192.168.203.10' end='192.168.203.99'/></dhcp></ip></network>`
    const file = path.join(client.binDir, '..', 'probe-net.xml')
    writeFileSync(file, xml)
    expect(virsh(remote.uri, ['net-create', file]).stderr).toBe('')
    expect(virsh(remote.uri, ['net-list', '--name']).stdout).toContain('probe')
    // The bridge and NAT rules live in the namespace, not on this host.
    expect(spawnSync('ip', ['link', 'show', 'vmlvprobe0']).status).not.toBe(0)
    expect(spawnSync('ip', ['-n', remote.ns, 'link', 'show', 'vmlvprobe0']).status).toBe(0)
    for (const host of [local, remote]) {
      const route = spawnSync('ip', ['netns', 'exec', host.ns, 'ip', 'route', 'get', '1.1.1.1'], {encoding: 'utf8'})
      expect(route.status).not.toBe(0)
      expect(route.stderr).toMatch(/unreachable/i)
    }
  })

  it('stop removes namespaces, links, processes and files', async () => {
    const hosts = [local, remote]
    const pids = hosts.map((host) => host.pids())
    expect(pids[1]!.length).toBe(3)
    const dirs = hosts.map((host) => path.dirname(host.stateDir))
    await Promise.all(hosts.map((host) => host.stop()))
    hosts.forEach((host, i) => expect(leftovers(host, pids[i]!)).toEqual([]))
    for (const dir of dirs) expect(existsSync(dir)).toBe(false)
    expect(spawnSync('ip', ['netns', 'list'], {encoding: 'utf8'}).stdout).not.toMatch(/vmlv-lv(local|remote)-/)
  })
})
