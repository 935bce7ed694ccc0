import {spawnSync} from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * A pretend libvirt host for tests: a network namespace (`vmlv-...`) joined to this host by a
 * veth pair on a private /30 (10.251.X.0/30: this host .1, the pretend host .2), a mount and
 * UTS namespace in which /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
 * /var/cache/libvirt are private directories, and its own virtlogd and libvirtd with the
 * configuration written here (root QEMU, no security driver, its own host UUID). It has a `dir`
 * storage pool named `default`. With `ssh`, an sshd runs in the same namespaces on the pretend
 * host's address, so that `qemu+ssh://root@ADDRESS/system` reaches its libvirtd.
 *
 * The namespace has no default route: guests on its NAT networks reach nothing beyond it and
 * this host's veth address.
 *
 * OpenSSH reads the user's config from the home directory of the passwd entry, never from
 * $HOME, so a test cannot point ssh at another ~/.ssh/config. `sshClient()` writes the config a
 * user would have (the host's address, User root, IdentityFile, a pinned host key) and a
 * directory with an `ssh` that runs /usr/bin/ssh with `-F` that config; a test puts that
 * directory first in PATH of the processes it starts (vm, virsh). Both virsh's qemu+ssh
 * transport and ssh's ProxyJump run `ssh` from PATH, and ProxyJump passes `-F` on to the jump.
 */
export interface LibvirtHost {
  /** Names the pretend host: its UTS host name and the suffix of its namespace. */
  name: string
  /** The network namespace. */
  ns: string
  /** Local URI of its libvirtd (through the private socket, no ssh). */
  uri: string
  /** qemu+ssh://root@ADDRESS/system, when started with ssh. */
  sshUri?: string | undefined
  /** The pretend host's address, reachable from this host. */
  address: string
  /** This host's end of the veth pair. */
  hostAddress: string
  /** The ssh_config block for the host (when started with ssh). */
  sshConfig?: string | undefined
  /** The private key that logs in as root (when started with ssh). */
  identity?: string | undefined
  /** What the pretend host's /var/lib/libvirt is on this host (the pool `default` is its images/). */
  stateDir: string
  /** The PIDs of the daemons the harness started. */
  pids(): number[]
  /** Runs virsh against this host's libvirtd (through the local socket). */
  virsh(args: string[]): {status: number; stdout: string; stderr: string}
  /** Stops everything it started (idempotent, also after a failed start). */
  stop(): Promise<void>
}

export interface LibvirtHostOptions {
  /** Start an sshd in the host's namespaces. */
  ssh?: boolean
  /** Host name (letters, digits, -); default lvhost. */
  name?: string
}

/** Every namespace the harness creates starts with this. */
export const NS_PREFIX = 'vmlv-'

function run(command: string[], input?: string): {status: number; stdout: string; stderr: string} {
  const result = spawnSync(command[0]!, command.slice(1), {encoding: 'utf8', input, timeout: 60_000})
  return {status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '')}
}

function must(command: string[]): string {
  const result = run(command)
  if (result.status !== 0) throw new Error(`${command.join(' ')} failed (${result.status}): ${result.stderr.trim()}`)
  return result.stdout
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function killPid(pid: number): Promise<void> {
  if (!alive(pid)) return
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100)
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
    for (let i = 0; i < 20 && alive(pid); i++) await sleep(50)
  }
}

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined
  const pid = Number(readFileSync(file, 'utf8').trim())
  return Number.isInteger(pid) && pid > 1 ? pid : undefined
}

/** A free 10.251.X.0/30 on this host: none of its addresses or routes use it. */
function freeSubnet(): number {
  const used = must(['ip', '-o', '-4', 'addr', 'show']) + must(['ip', '-4', 'route', 'show'])
  const candidates = Array.from({length: 254}, (_, i) => i + 1).filter((x) => !used.includes(`10.251.${x}.`))
  if (candidates.length === 0) throw new Error('no free 10.251.X.0/30 subnet for a pretend libvirt host')
  return candidates[Math.floor(Math.random() * candidates.length)]!
}

const PRIVATE_DIRS = {
  '/etc/libvirt': 'etc',
  '/run/libvirt': 'run',
  '/var/lib/libvirt': 'lib',
  '/var/log/libvirt': 'log',
  '/var/cache/libvirt': 'cache',
} as const

function randomUuid(): string {
  return crypto.randomUUID()
}

/**
 * libvirtd probes QEMU's capabilities on start (~6-9 s here under load) and caches them in
 * /var/cache/libvirt/qemu/capabilities, which is private to each pretend host. The harness
 * keeps one copy across hosts and runs: libvirtd checks a cached entry against the QEMU
 * binary and libvirt version and probes again when it no longer matches, so a stale copy
 * costs only the probe.
 */
const CAPABILITIES_CACHE = process.env.VM_TEST_LIBVIRT_CAPS ?? path.join(tmpdir(), 'vmfile-test-libvirt-qemu-capabilities')

function seedCapabilities(dir: string): void {
  mkdirSync(dir, {recursive: true})
  if (!existsSync(CAPABILITIES_CACHE)) return
  for (const file of readdirSync(CAPABILITIES_CACHE)) {
    if (file.endsWith('.xml')) copyFileSync(path.join(CAPABILITIES_CACHE, file), path.join(dir, file))
  }
}

function keepCapabilities(dir: string): void {
  if (!existsSync(dir)) return
  mkdirSync(CAPABILITIES_CACHE, {recursive: true})
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.xml')) continue
    const temporary = path.join(CAPABILITIES_CACHE, `.${file}.${process.pid}`)
    copyFileSync(path.join(dir, file), temporary)
    renameSync(temporary, path.join(CAPABILITIES_CACHE, file))
  }
}

/** Starts a pretend libvirt host; on failure removes whatever it created and throws. */
export async function startLibvirtHost(options: LibvirtHostOptions = {}): Promise<LibvirtHost> {
  const name = options.name ?? 'lvhost'
  if (!/^[a-z][a-z0-9-]{0,20}$/.test(name)) throw new Error(`bad pretend host name ${name}`)
  const root = mkdtempSync(path.join(tmpdir(), `vmlv-${name}-`))
  chmodSync(root, 0o711)
  const tag = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`
  const ns = `${NS_PREFIX}${name}-${tag}`
  let subnet = 0
  let vethHost = ''
  const files = {
    libvirtdPid: path.join(root, 'run', 'libvirtd.pid'),
    virtlogdPid: path.join(root, 'run', 'virtlogd.pid'),
    sshdPid: path.join(root, 'ssh', 'sshd.pid'),
  }
  let stopped = false

  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    // Every process in the namespace is ours: the daemons and what they spawned (QEMU, dnsmasq).
    for (let round = 0; round < 3; round++) {
      const pids = new Set<number>()
      for (const file of Object.values(files)) {
        const pid = readPid(file)
        if (pid !== undefined) pids.add(pid)
      }
      const inNs = run(['ip', 'netns', 'pids', ns])
      if (inNs.status === 0) for (const line of inNs.stdout.split('\n')) if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()))
      const live = [...pids].filter(alive)
      if (live.length === 0) break
      await Promise.all(live.map(killPid))
    }
    run(['ip', 'netns', 'del', ns])
    if (vethHost !== '' && run(['ip', 'link', 'show', vethHost]).status === 0) run(['ip', 'link', 'del', vethHost])
    rmSync(root, {recursive: true, force: true})
  }

  try {
    for (const dir of Object.values(PRIVATE_DIRS)) mkdirSync(path.join(root, dir), {recursive: true})
    mkdirSync(path.join(root, 'log', 'qemu'), {recursive: true})
    seedCapabilities(path.join(root, 'cache', 'qemu', 'capabilities'))
    mkdirSync(path.join(root, 'lib', 'images'), {recursive: true})
    mkdirSync(path.join(root, 'ssh'), {mode: 0o700})
    // The UTS host name resolves locally (else getaddrinfo waits ~10 s on every domain start).
    writeFileSync(path.join(root, 'hosts'), `127.0.0.1 localhost\n127.0.1.1 ${name}\n`)
    writeFileSync(
      path.join(root, 'etc', 'libvirtd.conf'),
      [`host_uuid = "${randomUuid()}"`, 'auth_unix_ro = "none"', 'auth_unix_rw = "none"', 'unix_sock_rw_perms = "0700"', ''].join('\n'),
    )
    writeFileSync(
      path.join(root, 'etc', 'qemu.conf'),
      ['user = "root"', 'group = "root"', 'security_driver = "none"', 'dynamic_ownership = 0', ''].join('\n'),
    )

    must(['ip', 'netns', 'add', ns])
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    for (let attempt = 0; ; attempt++) {
      subnet = freeSubnet()
      vethHost = `vmlv${subnet}h`
      const made = run(['ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', `vmlv${subnet}n`, 'netns', ns])
      if (made.status === 0) break
      vethHost = ''
      if (attempt >= 5) throw new Error(`cannot create the veth pair: ${made.stderr.trim()}`)
    }
    const hostAddress = `10.251.${subnet}.1`
    const address = `10.251.${subnet}.2`
    must(['ip', 'addr', 'add', `${hostAddress}/30`, 'dev', vethHost])
    must(['ip', 'link', 'set', vethHost, 'up'])
    must(['ip', '-n', ns, 'addr', 'add', `${address}/30`, 'dev', `vmlv${subnet}n`])
    must(['ip', '-n', ns, 'link', 'set', `vmlv${subnet}n`, 'up'])

    // The mount/UTS namespace lives as long as a process in it: the daemons keep it.
    const binds = Object.entries(PRIVATE_DIRS)
      .map(([target, dir]) => `mkdir -p ${target} && mount --bind ${path.join(root, dir)} ${target}`)
      .join(' && ')
    const script = [
      binds,
      `mount --bind ${path.join(root, 'hosts')} /etc/hosts`,
      `hostname ${name}`,
      `virtlogd -d -p ${'/run/libvirt/virtlogd.pid'}`,
      `libvirtd -d -p ${'/run/libvirt/libvirtd.pid'}`,
    ].join(' && ')
    must(['ip', 'netns', 'exec', ns, 'unshare', '--mount', '--uts', '--propagation', 'private', 'sh', '-ec', script])
    const uri = `qemu:///system?socket=${path.join(root, 'run', 'libvirt-sock')}`
    const virsh = (args: string[]): {status: number; stdout: string; stderr: string} => run(['virsh', '-c', uri, ...args])
    for (let i = 0; ; i++) {
      if (existsSync(path.join(root, 'run', 'libvirt-sock')) && virsh(['version']).status === 0) break
      if (i > 100) throw new Error(`libvirtd of ${name} did not answer: ${virsh(['version']).stderr.trim()}`)
      await sleep(100)
    }
    keepCapabilities(path.join(root, 'cache', 'qemu', 'capabilities'))
    for (const step of [
      ['pool-define-as', 'default', 'dir', '--target', '/var/lib/libvirt/images'],
      ['pool-start', 'default'],
      ['pool-autostart', 'default'],
    ]) {
      const result = virsh(step)
      if (result.status !== 0) throw new Error(`virsh ${step.join(' ')} on ${name}: ${result.stderr.trim()}`)
    }

    const host: LibvirtHost = {
      name,
      ns,
      uri,
      address,
      hostAddress,
      stateDir: path.join(root, 'lib'),
      pids: () => Object.values(files).flatMap((file) => readPid(file) ?? []),
      virsh,
      stop,
    }
    if (options.ssh === true) Object.assign(host, await startSshd(root, name, address, readPid(files.libvirtdPid)!))
    return host
  } catch (error) {
    await stop()
    throw error
  }
}

async function startSshd(
  root: string,
  name: string,
  address: string,
  libvirtdPid: number,
): Promise<Pick<LibvirtHost, 'identity' | 'sshConfig' | 'sshUri'>> {
  const dir = path.join(root, 'ssh')
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `host-${name}`, '-f', path.join(dir, 'host_ed25519')])
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', path.join(dir, 'id_ed25519')])
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'id_ed25519.pub')))
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `ListenAddress ${address}:22`,
      // The namespace's own loopback: lets a test jump through the host to itself (ssh refuses a jump loop).
      'ListenAddress 127.0.0.1:22',
      `HostKey ${path.join(dir, 'host_ed25519')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The keys live under /tmp (world-writable): sshd's ownership checks would refuse them.
      'StrictModes no',
      'AllowTcpForwarding yes',
      'MaxStartups 50:30:100',
      'MaxSessions 50',
      '',
    ].join('\n'),
  )
  // sshd's privilege separation directory (openssh-server's own; normally made by its service).
  mkdirSync('/run/sshd', {recursive: true, mode: 0o755})
  must(['nsenter', '-t', String(libvirtdPid), '-m', '-n', '-u', '/usr/sbin/sshd', '-f', path.join(dir, 'sshd_config')])
  for (let i = 0; !existsSync(path.join(dir, 'sshd.pid')); i++) {
    if (i > 50) throw new Error(`sshd of ${name} wrote no pidfile`)
    await sleep(100)
  }
  const hostKey = readFileSync(path.join(dir, 'host_ed25519.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')
  writeFileSync(path.join(dir, 'known_hosts'), `${address} ${hostKey}\n`)
  const identity = path.join(dir, 'id_ed25519')
  const sshConfig = [
    `Host ${address}`,
    '  User root',
    `  IdentityFile ${identity}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${path.join(dir, 'known_hosts')}`,
    '  StrictHostKeyChecking yes',
    '  BatchMode yes',
    '  ConnectTimeout 10',
    '',
  ].join('\n')
  return {identity, sshConfig, sshUri: `qemu+ssh://root@${address}/system`}
}

/** The user-side ssh setup for some pretend hosts: see LibvirtHost. */
export interface SshClient {
  /** The ssh_config file (every host's block). */
  configFile: string
  /** A directory holding `ssh` (runs /usr/bin/ssh -F configFile); put it first in PATH. */
  binDir: string
  /** process.env with binDir first in PATH. */
  env: NodeJS.ProcessEnv
  /** Removes the files. */
  remove(): void
}

export function sshClient(hosts: readonly LibvirtHost[]): SshClient {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmlv-client-'))
  const configFile = path.join(dir, 'ssh_config')
  writeFileSync(configFile, hosts.flatMap((host) => host.sshConfig ?? []).join('\n'))
  const binDir = path.join(dir, 'bin')
  mkdirSync(binDir)
  writeFileSync(path.join(binDir, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${configFile}' "$@"\n`, {mode: 0o755})
  return {
    configFile,
    binDir,
    env: {...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`},
    remove: () => rmSync(dir, {recursive: true, force: true}),
  }
}

/** Namespaces, veth links and processes a pretend host could leave behind (for leak checks). */
export function leftovers(host: Pick<LibvirtHost, 'ns' | 'address' | 'pids'>, pids: readonly number[]): string[] {
  const found: string[] = []
  if (run(['ip', 'netns', 'list']).stdout.includes(host.ns)) found.push(`namespace ${host.ns}`)
  if (run(['ip', '-o', '-4', 'addr', 'show']).stdout.includes(host.address.replace(/\.2$/, '.1'))) found.push(`veth for ${host.address}`)
  for (const pid of pids) if (alive(pid)) found.push(`process ${pid}`)
  return found
}
