import {mkdirSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {sshClient, startLibvirtHost, type LibvirtHost, type SshClient} from '../helpers/libvirt-host.js'
import {machineFixture, vm, type MachineFixture} from '../helpers/vm-cli.js'

/** The first bytes a TCP service on 127.0.0.1:`port` sends (an SSH banner, here). */
function banner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no banner on 127.0.0.1:${port}`)))
    socket.once('data', (chunk) => {
      socket.destroy()
      resolve(chunk.toString())
    })
    socket.once('error', reject)
  })
}

/**
 * Remote libvirt hosts reached over qemu+ssh://: two pretend hosts (test/helpers/libvirt-host.ts),
 * each with its own libvirtd and sshd, one machine of the tiny box on each, started in parallel by
 * one `vm up`. vm runs on this host: virsh, the guests' SSH (through the libvirt host as jump
 * host), rsync and the forwarded port all go over ssh, with the keys of the user's ssh config.
 */
describe('machines on remote libvirt hosts', () => {
  let hosts: LibvirtHost[] = []
  let client: SshClient | undefined
  let fixture: MachineFixture
  const forwarded = 23000 + (process.pid % 1000)
  const run = (args: string[]) => vm(args, {cwd: fixture.project, env: {...client!.env, ...fixture.env}, timeoutMs: 300_000})

  beforeAll(async () => {
    hosts = await Promise.all([startLibvirtHost({name: 'lvra', ssh: true}), startLibvirtHost({name: 'lvrb', ssh: true})])
    client = sshClient(hosts)
    fixture = machineFixture('libvirt-remote', 'tiny')
    writeFileSync(path.join(fixture.project, 'marker.txt'), 'synced by rsync\n')
    writeFileSync(
      path.join(fixture.project, 'Vmfile'),
      [
        'box: vmfile/tiny',
        'provider: libvirt',
        'cpus: 1',
        'memory: 256',
        'machines:',
        '  a:',
        `    libvirt: {uri: "${hosts[0]!.sshUri}"}`,
        `    forwarded_ports: [{guest: 22, host: ${forwarded}}]`,
        '  b:',
        `    libvirt: {uri: "${hosts[1]!.sshUri}"}`,
        '',
      ].join('\n'),
    )
  }, 120_000)

  afterAll(async () => {
    if (fixture !== undefined) await run(['destroy', '-f']).catch(() => undefined)
    await fixture?.cleanup().catch(() => undefined)
    await Promise.all(hosts.map((host) => host.stop()))
    client?.remove()
  }, 180_000)

  it('up starts one machine on each host, in parallel', async () => {
    const up = await run(['up'])
    expect(up.code, up.stderr + up.stdout).toBe(0)
    for (const [index, name] of ['a', 'b'].entries()) {
      const domains = hosts[index]!.virsh(['list', '--name']).stdout
      expect(domains).toMatch(new RegExp(`^vm-${name}-`, 'm'))
    }
  })

  it('vm ssh -c runs in the guest through the libvirt host, with its exit code', async () => {
    const a = await run(['ssh', 'a', '-c', 'cat /vm/marker.txt; exit 7'])
    expect(a.stdout).toBe('synced by rsync\n')
    expect(a.code).toBe(7)
    const b = await run(['ssh', 'b', '-c', 'test -f /vm/marker.txt && echo ok'])
    expect(b.stdout.trim()).toBe('ok')
  })

  it('forwards a port of the guest to 127.0.0.1 on this host', async () => {
    expect(await banner(forwarded)).toMatch(/^SSH-2\.0-/)
  })

  it('global-status names the host of each machine', async () => {
    const listed = JSON.parse((await run(['global-status', '--json'])).stdout).result.machines as Array<{
      name: string
      host: string
      projectDir: string
    }>
    const ours = listed.filter((machine) => machine.projectDir === fixture.project)
    expect(Object.fromEntries(ours.map((machine) => [machine.name, machine.host]))).toEqual({a: hosts[0]!.address, b: hosts[1]!.address})
  })

  it('keeps one connection per libvirt host: vm status right after needs no new ssh login', async () => {
    // An ssh that refuses to run: virsh's own ssh transport would log in anew for every command.
    const noSsh = path.join(fixture.home, 'no-ssh')
    mkdirSync(noSsh, {recursive: true})
    writeFileSync(path.join(noSsh, 'ssh'), '#!/bin/sh\necho "ssh must not run" >&2\nexit 255\n', {mode: 0o755})
    const env = {...client!.env, ...fixture.env, PATH: `${noSsh}:${client!.env.PATH ?? ''}`}
    const status = await vm(['status', '--json'], {cwd: fixture.project, env, timeoutMs: 60_000})
    expect(status.code, status.stderr).toBe(0)
    const machines = JSON.parse(status.stdout).result.machines as Array<{name: string; state: string}>
    expect(Object.fromEntries(machines.map((machine) => [machine.name, machine.state]))).toEqual({a: 'running', b: 'running'})
  })

  it('destroy removes the domains, their volumes and the forwarder; the box volume stays', async () => {
    const destroyed = await run(['destroy', '-f'])
    expect(destroyed.code, destroyed.stderr).toBe(0)
    for (const host of hosts) {
      expect(host.virsh(['list', '--all', '--name']).stdout.trim()).toBe('')
      // virsh 9.0's vol-list has no --name: a table of " Name  Path" rows.
      const listing = host.virsh(['vol-list', '--pool', 'default'])
      expect(listing.status, listing.stderr).toBe(0)
      expect(listing.stdout).not.toMatch(/^\s*vm-\S+/m)
      expect(listing.stdout).toMatch(/^\s*vmbox-[0-9a-f]{32}\.qcow2\s/m)
    }
    await expect(banner(forwarded)).rejects.toThrow()
  })
})
