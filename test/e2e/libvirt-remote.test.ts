import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {sshClient, startLibvirtHost, type LibvirtHost, type SshClient} from '../helpers/libvirt-host.js'
import {inTerminal, shellWord as quote} from '../helpers/terminal.js'
import {machineFixture, root, vm, type MachineFixture} from '../helpers/vm-cli.js'

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Listed {
  name: string
  state: string
  host?: string
  projectDir: string
  problem?: string
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

  it("console: --log reads the remote domain's serial log; attaching runs virsh console over the URI, Ctrl-] detaches", async () => {
    const marker = `remote-console-${process.pid}`
    const wrote = await run(['ssh', 'a', '-c', `echo unattended-${marker} | sudo -n tee /dev/ttyS0 >/dev/null`])
    expect(wrote.code, wrote.stderr).toBe(0)
    const log = await run(['console', 'a', '--log'])
    expect(log.code, log.stderr).toBe(0)
    expect(log.stdout).toContain(`unattended-${marker}`)
    const command = `${quote(process.execPath)} ${quote(path.join(root, 'bin/run.js'))} console a`
    const until = async (seen: () => string, text: string, ms: number) => {
      for (const deadline = Date.now() + ms; !seen().includes(text) && Date.now() < deadline;) await sleep(200)
    }
    const session = await inTerminal(command, {cwd: fixture.project, env: {...client!.env, ...fixture.env}}, async (keys, seen) => {
      // Written once virsh console is connected (what the guest prints meanwhile goes to the log only).
      await until(seen, 'Escape character', 30_000)
      const echoed = await run(['ssh', 'a', '-c', `echo attached-${marker} | sudo -n tee /dev/ttyS0 >/dev/null`])
      expect(echoed.code, echoed.stderr).toBe(0)
      await until(seen, `attached-${marker}`, 10_000)
      keys('\u001D')
    })
    expect(session.output).toContain("Attached to a's serial console. Detach with Ctrl-].")
    expect(session.output).toContain(`attached-${marker}`)
    expect(session.output).toContain("Detached from a's console.")
    expect(session.code).toBe(0)
  })

  it('a host that cannot be reached: status and global-status show its machine unknown with the reason, the other one running; ssh and halt name the host', async () => {
    const b = hosts[1]!
    // An unreachable route for the host alone (more specific than its /30): connections to it
    // fail at once, and nothing to its address leaves through the default route meanwhile.
    const route = ['unreachable', `${b.address}/32`]
    expect(spawnSync('ip', ['route', 'add', ...route]).status).toBe(0)
    try {
      const status = await run(['status', '--json'])
      expect(status.code, status.stderr).toBe(0)
      const machines = JSON.parse(status.stdout).result.machines as Listed[]
      expect(machines.map((machine) => [machine.name, machine.state])).toEqual([
        ['a', 'running'],
        ['b', 'unknown'],
      ])
      expect(machines[1]!.problem).toContain(`Cannot reach libvirt host ${b.address}`)
      const global = JSON.parse((await run(['global-status', '--json'])).stdout).result.machines as Listed[]
      const ours = global.filter((machine) => machine.projectDir === fixture.project)
      expect(Object.fromEntries(ours.map((machine) => [machine.name, [machine.state, machine.host]]))).toEqual({
        a: ['running', hosts[0]!.address],
        b: ['unknown', b.address],
      })
      for (const args of [
        ['ssh', 'b', '-c', 'true'],
        ['halt', 'b'],
      ]) {
        const refused = await run(args)
        expect(refused.code, args.join(' ')).not.toBe(0)
        expect(refused.stderr, args.join(' ')).toContain(b.address)
      }
    } finally {
      spawnSync('ip', ['route', 'del', ...route])
    }
  })

  it("the domain destroyed behind vm's back: its port keeper ends by itself and status says aborted", async () => {
    const forwarder = path.join(fixture.project, '.vm/machines/a/forwarder.json')
    const {pid} = JSON.parse(readFileSync(forwarder, 'utf8')) as {pid: number}
    const domain = hosts[0]!.virsh(['list', '--name']).stdout.trim()
    expect(hosts[0]!.virsh(['destroy', domain]).status).toBe(0)
    const deadline = Date.now() + 20_000
    const alive = () => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    while (alive() && Date.now() < deadline) await sleep(200)
    expect(alive(), 'the keeper of the destroyed domain still runs').toBe(false)
    await expect(banner(forwarded)).rejects.toThrow()
    const machines = JSON.parse((await run(['status', '--json'])).stdout).result.machines as Listed[]
    expect(machines.find((machine) => machine.name === 'a')?.state).toBe('aborted')
  })

  it('a cloud image on a remote host: its NoCloud seed is uploaded as a volume of the machine, attached, and removed by destroy', async () => {
    // The tiny box's own disk added as a bare image is a cloud image to vm (its guest ignores
    // the seed, so vm cannot log in: a short boot_timeout ends the up once the domain runs).
    const image = path.join(fixture.home, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/box.img')
    const project = mkdtempSync(path.join(tmpdir(), 'vm-e2e-libvirt-seed-'))
    const inProject = (args: string[]) => vm(args, {cwd: project, env: {...client!.env, ...fixture.env}, timeoutMs: 120_000})
    try {
      const added = await inProject(['box', 'add', '--name', 'test/tinycloud', image])
      expect(added.code, added.stderr).toBe(0)
      writeFileSync(
        path.join(project, 'Vmfile'),
        [
          'box: test/tinycloud',
          'provider: libvirt',
          'memory: 256',
          'boot_timeout: 5',
          'synced_folders: false',
          `libvirt: {uri: "${hosts[0]!.sshUri}"}`,
          '',
        ].join('\n'),
      )
      const up = await inProject(['up'])
      expect(up.stderr).not.toContain('cannot read')
      const placement = JSON.parse(readFileSync(path.join(project, '.vm/machines/default/libvirt.json'), 'utf8')) as {
        domain: string
        seed: {volume: string; path: string}
      }
      expect(placement.seed.volume).toMatch(/^vm-[0-9a-z]+-cidata\.iso$/)
      const xml = hosts[0]!.virsh(['dumpxml', placement.domain]).stdout
      expect(xml).toMatch(new RegExp(`<disk type='file' device='cdrom'>[\\s\\S]*<source file='${placement.seed.path}'`))
      const uploaded = path.join(hosts[0]!.stateDir, 'images', path.basename(placement.seed.path))
      expect(readFileSync(uploaded).equals(readFileSync(path.join(project, '.vm/machines/default/cidata.iso')))).toBe(true)
      const destroyed = await inProject(['destroy', '-f'])
      expect(destroyed.code, destroyed.stderr).toBe(0)
      expect(existsSync(uploaded)).toBe(false)
    } finally {
      await inProject(['destroy', '-f']).catch(() => undefined)
      rmSync(project, {recursive: true, force: true})
    }
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
