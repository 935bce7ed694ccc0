import {spawnSync} from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {createLan, type Lan} from '../helpers/netns.js'
import {builtBox, installBox, vm} from '../helpers/vm-cli.js'

/** Kills the QEMU processes a project's machines left (by their pidfiles), as a last resort. */
function killMachines(project: string): void {
  const machines = path.join(project, '.vm/machines')
  if (!existsSync(machines)) return
  for (const name of readdirSync(machines)) {
    const pidfile = path.join(machines, name, 'qemu.pid')
    if (!existsSync(pidfile)) continue
    const pid = Number(readFileSync(pidfile, 'utf8').trim())
    const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : ''
    if (pid > 0 && cmdline.includes(path.join(project, '.vm'))) process.kill(pid, 'SIGKILL')
  }
}

interface Nic {
  type: string
  mac: string
  network: string | undefined
  address: string | undefined
}

const TINY = 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nsynced_folders: false\n'
const NOBODY = 65_534

/**
 * Bridged and private networks, inside a network namespace with a bridge, a veth pair and
 * dnsmasq: as root (vm makes the taps) and as an unprivileged user (QEMU's bridge helper).
 */
describe('networks in a private namespace', () => {
  let base: string
  let home: string
  let lan: Lan
  const projects: string[] = []
  const project = (name: string, vmfile: string): string => {
    const dir = path.join(base, name)
    mkdirSync(dir, {recursive: true})
    writeFileSync(path.join(dir, 'Vmfile'), vmfile)
    projects.push(dir)
    return dir
  }
  const inLan = (dir: string, args: string[]) => vm(args, {cwd: dir, env: {VM_HOME: home}, wrap: lan.wrap})
  const nics = async (dir: string): Promise<Record<string, Nic[]>> => {
    const status = await inLan(dir, ['status', '--json'])
    const machines = JSON.parse(status.stdout).result.machines as Array<{name: string; networks?: Nic[]}>
    return Object.fromEntries(machines.map((machine) => [machine.name, machine.networks ?? []]))
  }
  const taps = (): string[] => lan.links().filter((name) => !['lo', 'br0', 'lan0', 'dhcp0', 'ovsbr0', 'ovsbr0p'].includes(name))

  beforeAll(async () => {
    base = mkdtempSync(path.join(tmpdir(), 'vm-e2e-net-'))
    chmodSync(base, 0o755)
    home = path.join(base, 'home')
    installBox(builtBox('tiny'), path.join(home, 'data/boxes'), 'vmfile/tiny', '1.0.0')
    lan = await createLan(base)
  })

  afterAll(async () => {
    for (const dir of projects) {
      await inLan(dir, ['destroy', '-f']).catch(() => undefined)
      killMachines(dir)
    }
    lan?.cleanup()
    rmSync(base, {recursive: true, force: true})
  })

  describe('bridged, as root', () => {
    let dir: string

    it('a bridge that does not exist is an error before QEMU starts', async () => {
      const missing = project('missing', `${TINY}networks:\n  - {type: bridged, bridge: br7}\n`)
      const up = await inLan(missing, ['up'])
      expect(up.code).toBe(1)
      expect(up.stderr).toContain('Machine default: bridge br7 does not exist on this host')
      expect(up.stderr).toContain('ip link add br7 type bridge')
      expect(existsSync(path.join(missing, '.vm/machines/default/qemu.pid'))).toBe(false)
      expect(taps()).toEqual([])
    })

    it('machines get a DHCP lease or their static address, distinct MACs, and answer SSH at it', async () => {
      dir = project(
        'bridged',
        `${TINY}machines:\n  a:\n    networks: [{type: bridged, bridge: br0}]\n  b:\n    networks: [{type: bridged, bridge: br0, ip: 10.77.0.20/24}]\n`,
      )
      const up = await inLan(dir, ['up'])
      expect(up.code, up.stderr).toBe(0)
      const {a, b} = await nics(dir)
      expect(a![0]).toMatchObject({type: 'nat', address: '10.0.2.15/24'})
      expect(a![1]).toMatchObject({type: 'bridged', network: 'br0'})
      expect(a![1]!.address).toMatch(/^10\.77\.0\.(5\d|[6-9]\d)\/24$/)
      expect(b![1]).toMatchObject({type: 'bridged', network: 'br0', address: '10.77.0.20/24'})
      const macs = [...a!, ...b!].map((nic) => nic.mac)
      expect(new Set(macs).size).toBe(4)
      const address = a![1]!.address!.split('/')[0]!
      expect(lan.leases().some((lease) => lease.includes(a![1]!.mac) && lease.includes(address))).toBe(true)
      expect(taps()).toHaveLength(2)
      expect(taps().some((tap) => tap.startsWith('a-'))).toBe(true)

      // From inside the namespace, with the machine's own key.
      const key = path.join(dir, '.vm/machines/a/id_ed25519')
      const ssh = lan.exec([
        'ssh',
        ...['-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'],
        ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
        `vm@${address}`,
        'cat /etc/hostname; ip -4 -o addr show dev eth1',
      ])
      expect(ssh.status, ssh.stderr).toBe(0)
      expect(ssh.stdout).toContain(`inet ${address}/24`)
      // And machine to machine over the bridge.
      const banner = await inLan(dir, ['ssh', 'a', '-c', 'nc -w 5 10.77.0.20 22 </dev/null | head -c 16'])
      expect(banner.stdout).toContain('SSH-2.0')
      const table = await inLan(dir, ['status'])
      expect(table.stdout).toMatch(new RegExp(`^a .*10\\.0\\.2\\.15 ${address.replaceAll('.', '\\.')}\\(br0\\)`, 'm'))
    })

    it('vm halt removes the tap; vm destroy removes it after QEMU was killed', async () => {
      const before = taps()
      expect((await inLan(dir, ['halt', 'a'])).code).toBe(0)
      expect(taps()).toEqual(before.filter((tap) => !tap.startsWith('a-')))
      const pid = Number(readFileSync(path.join(dir, '.vm/machines/b/qemu.pid'), 'utf8'))
      process.kill(pid, 'SIGKILL')
      await new Promise((resolve) => setTimeout(resolve, 500))
      const status = await inLan(dir, ['status', 'b'])
      expect(status.stdout).toMatch(/^b\s+aborted/m)
      expect(taps()).toHaveLength(1)
      expect((await inLan(dir, ['destroy', '-f'])).code).toBe(0)
      expect(taps()).toEqual([])
    })
  })

  describe('an Open vSwitch bridge, as root', () => {
    it('gets the tap through ovs-vsctl and loses it on halt', async () => {
      // Open vSwitch itself is not run here: a stand-in ovs-vsctl records what vm asks of it,
      // and a veth end plays the OVS bridge's internal port.
      const fake = path.join(base, 'fake-ovs')
      mkdirSync(fake, {recursive: true})
      const log = path.join(fake, 'calls')
      writeFileSync(
        path.join(fake, 'ovs-vsctl'),
        `#!/bin/sh\necho "$*" >> ${log}\ncase "$1 $2" in "br-exists ovsbr0") exit 0 ;; br-exists*) exit 2 ;; esac\nexit 0\n`,
        {mode: 0o755},
      )
      expect(lan.exec(['ip', 'link', 'add', 'ovsbr0', 'type', 'veth', 'peer', 'name', 'ovsbr0p']).status).toBe(0)
      const dir = project('ovs', `${TINY}networks:\n  - {type: bridged, bridge: ovsbr0, ip: 10.88.0.5/24}\n`)
      const env = {VM_HOME: home, PATH: `${fake}:${process.env.PATH}`}
      const up = await vm(['up'], {cwd: dir, env, wrap: lan.wrap})
      expect(up.code, up.stderr).toBe(0)
      expect(up.stdout).toContain('networks: 10.88.0.5/24 (bridged ovsbr0)')
      const [tap] = taps().filter((name) => name.startsWith('default-'))
      expect(tap).toBeDefined()
      expect(readFileSync(log, 'utf8')).toContain(`--may-exist add-port ovsbr0 ${tap}`)
      expect((await vm(['halt'], {cwd: dir, env, wrap: lan.wrap})).code).toBe(0)
      expect(readFileSync(log, 'utf8')).toContain(`--if-exists del-port ovsbr0 ${tap}`)
      expect(taps()).not.toContain(tap)
      lan.exec(['ip', 'link', 'del', 'ovsbr0'])
    })
  })

  describe('private network', () => {
    it('machines reach each other; the namespace, with an address on that subnet, cannot reach them', async () => {
      const dir = project(
        'private',
        `${TINY}machines:\n  c:\n    networks: [{type: private, ip: 192.168.56.10/24}]\n  d:\n    networks: [{type: private, ip: 192.168.56.11/24}]\n`,
      )
      // The "host" side of this test has an interface on the same subnet.
      expect(lan.exec(['ip', 'addr', 'add', '192.168.56.1/24', 'dev', 'br0']).status).toBe(0)
      const up = await inLan(dir, ['up'])
      expect(up.code, up.stderr).toBe(0)
      expect(up.stdout).toContain('[c] networks: 192.168.56.10/24 (private project)')
      const {c, d} = await nics(dir)
      expect(c![1]).toMatchObject({type: 'private', network: 'project', address: '192.168.56.10/24'})
      expect(d![1]).toMatchObject({type: 'private', network: 'project', address: '192.168.56.11/24'})
      expect((await inLan(dir, ['ssh', 'c', '-c', 'nc -w 5 192.168.56.11 22 </dev/null | head -c 16'])).stdout).toContain('SSH-2.0')
      expect((await inLan(dir, ['ssh', 'd', '-c', 'sudo ping -c 2 -W 3 192.168.56.10 >/dev/null && echo reached'])).stdout).toContain(
        'reached',
      )
      const fromHost = lan.exec([
        process.execPath,
        '-e',
        "const s=require('net').connect(22,'192.168.56.11');s.setTimeout(3000,()=>process.exit(3));s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(4))",
      ])
      expect(fromHost.status).not.toBe(0)
      const toHost = await inLan(dir, ['ssh', 'c', '-c', 'sudo ping -c 1 -W 2 192.168.56.1 >/dev/null && echo reached || echo unreachable'])
      expect(toHost.stdout.trim()).toBe('unreachable')
      expect(taps()).toEqual([])
      await inLan(dir, ['destroy', '-f'])
    })
  })

  describe("bridged, as an unprivileged user through QEMU's bridge helper", () => {
    let dir: string
    let userHome: string
    let etcQemuMade = false
    const wrapFor = (conf: string, helper: string, tun: string | undefined): string[] => [
      ...lan.wrap,
      ...['unshare', '--mount', '--propagation', 'private', 'sh', '-c'],
      'mount --bind "$1" /etc/qemu && mount --bind "$2" /usr/lib/qemu/qemu-bridge-helper && ' +
        '{ [ -z "$3" ] || mount --bind "$3" /dev/net/tun; } && shift 3 && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"',
      ...['sh', conf, helper, tun ?? ''],
    ]
    let allowed: string[]
    let denied: string[]
    const asUser = (wrap: string[], args: string[]) => vm(args, {cwd: dir, env: {VM_HOME: userHome, HOME: userHome}, wrap})

    beforeAll(() => {
      const fixtures = path.join(base, 'helper')
      mkdirSync(path.join(fixtures, 'allow'), {recursive: true, mode: 0o755})
      mkdirSync(path.join(fixtures, 'deny'), {recursive: true, mode: 0o755})
      writeFileSync(path.join(fixtures, 'allow/bridge.conf'), 'allow br0\n')
      writeFileSync(path.join(fixtures, 'deny/bridge.conf'), 'allow br9\n')
      // The helper must be setuid root (Debian installs it without the bit); this copy is
      // only ever seen inside the test's mount namespace.
      const helper = path.join(fixtures, 'qemu-bridge-helper')
      copyFileSync('/usr/lib/qemu/qemu-bridge-helper', helper)
      chmodSync(helper, 0o4755)
      // Where /dev/net/tun is root-only, a 0666 node for the namespace, as most systems have.
      let tun: string | undefined
      if ((statSync('/dev/net/tun').mode & 0o006) !== 0o006) {
        tun = path.join(fixtures, 'tun')
        expect(spawnSync('mknod', ['-m', '666', tun, 'c', '10', '200']).status).toBe(0)
      }
      if (!existsSync('/etc/qemu')) {
        mkdirSync('/etc/qemu')
        etcQemuMade = true
      }
      allowed = wrapFor(path.join(fixtures, 'allow'), helper, tun)
      denied = wrapFor(path.join(fixtures, 'deny'), helper, tun)
      userHome = path.join(base, 'user-home')
      installBox(builtBox('tiny'), path.join(userHome, 'data/boxes'), 'vmfile/tiny', '1.0.0')
      dir = project('user', `${TINY}networks:\n  - {type: bridged, bridge: br0}\n`)
      for (const owned of [userHome, dir]) spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, owned])
    })

    afterAll(async () => {
      await asUser(allowed, ['destroy', '-f']).catch(() => undefined)
      killMachines(dir)
      if (etcQemuMade) rmSync('/etc/qemu', {recursive: true, force: true})
    })

    it('a bridge that bridge.conf does not allow is an error that explains bridge.conf', async () => {
      const up = await asUser(denied, ['up'])
      expect(up.code).toBe(1)
      expect(up.stderr).toContain("Machine default: QEMU's bridge helper does not allow bridge br0")
      expect(up.stderr).toContain("printf 'allow br0\\n' >> /etc/qemu/bridge.conf")
      expect(up.stderr).toContain('access denied by acl file')
      const status = await asUser(denied, ['status'])
      expect(status.stdout).toMatch(/^default\s+poweroff/m)
      expect(taps()).toEqual([])
    })

    it('with the bridge allowed, the machine gets a lease; halt leaves no tap', async () => {
      const up = await asUser(allowed, ['up'])
      expect(up.code, up.stderr).toBe(0)
      expect(up.stdout).toMatch(/networks: 10\.77\.0\.\d+\/24 \(bridged br0\)/)
      expect(taps()).toHaveLength(1)
      const owner = readFileSync(path.join(dir, '.vm/machines/default/qemu.pid'), 'utf8').trim()
      expect(statSync(`/proc/${owner}`).uid).toBe(NOBODY)
      expect((await asUser(allowed, ['halt'])).code).toBe(0)
      expect(taps()).toEqual([])
    })
  })
})
