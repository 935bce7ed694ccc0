import {spawnSync} from 'node:child_process'
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {probeKvm} from '../../src/driver/qemu/accel.js'
import {createOverlay} from '../../src/driver/qemu/img.js'
import {lockMachine} from '../../src/machine/lock.js'
import {writeRecord, type MachineRecord} from '../../src/machine/record.js'
import {leasePort, releaseLease, transferLease} from '../../src/network/ports.js'
import {runAnsible} from '../../src/provision/ansible.js'
import {generateKeyPair, insecurePrivateKeys} from '../../src/ssh/keys.js'
import {acquireFileLock} from '../../src/state/file-lock.js'

// Written for root (the tests run as root here) and for ordinary users alike: another user's
// directory is made with chown when we are root.
const NOBODY = 65534
const mode = (file: string): number => statSync(file).mode & 0o777
const scratch = (): string => mkdtempSync(path.join(tmpdir(), 'vm-private-'))
const range: [number, number] = [46240, 46249]

/** A file that must never change, and a link to it planted where vm writes. */
function victim(dir: string): string {
  const file = path.join(dir, 'victim')
  writeFileSync(file, 'precious\n')
  return file
}

describe('the runtime directory is trusted only when it is ours and private', () => {
  it('a runtime directory created by another user is refused, naming it and its owner', async () => {
    const runtime = path.join(scratch(), 'run')
    mkdirSync(runtime, {mode: 0o700})
    chownSync(runtime, NOBODY, NOBODY)
    await expect(leasePort(path.join(runtime, 'ports'), 'a', range)).rejects.toThrow(
      new RegExp(`Refusing to use ${runtime}.*owner uid ${NOBODY}`),
    )
    expect(readdirSync(runtime)).toEqual([])
  })

  it('a runtime directory that group or others can write is refused', async () => {
    const runtime = path.join(scratch(), 'run')
    mkdirSync(runtime)
    chmodSync(runtime, 0o777)
    await expect(leasePort(path.join(runtime, 'ports'), 'a', range)).rejects.toThrow(/Refusing to use .*others can write/)
    chmodSync(runtime, 0o770)
    await expect(leasePort(path.join(runtime, 'ports'), 'a', range)).rejects.toThrow(/Refusing to use .*others can write/)
  })

  it('a symlink in place of the lease directory is refused', async () => {
    const base = scratch()
    mkdirSync(path.join(base, 'elsewhere'), {mode: 0o700})
    symlinkSync(path.join(base, 'elsewhere'), path.join(base, 'ports'))
    await expect(leasePort(path.join(base, 'ports'), 'a', range)).rejects.toThrow(/Refusing to use .*symbolic link/)
    expect(readdirSync(path.join(base, 'elsewhere'))).toEqual([])
  })

  it('lease directories are created 0700, and a wider existing one is narrowed', async () => {
    const base = scratch()
    const leases = path.join(base, 'ports')
    await leasePort(leases, 'a', range)
    expect(mode(leases)).toBe(0o700)
    chmodSync(leases, 0o755)
    await leasePort(leases, 'b', range)
    expect(mode(leases)).toBe(0o700)
  })

  it('a link planted at a lease name never changes the file it points to', async () => {
    const base = scratch()
    const leases = path.join(base, 'ports')
    const target = victim(base)
    const port = await leasePort(leases, 'a', [46250, 46250])
    const [name] = readdirSync(leases).filter((file) => file.endsWith('.lease'))
    await releaseLease(leases, port, 'a')
    symlinkSync(target, path.join(leases, name!))
    await transferLease(leases, port, 'b', process.pid)
    expect(readFileSync(target, 'utf8')).toBe('precious\n')
    expect(lstatSync(path.join(leases, name!)).isFile()).toBe(true)
    expect(mode(path.join(leases, name!))).toBe(0o600)
  })
})

describe('state, key and cache files are written without following links', () => {
  let saved: string | undefined
  beforeEach(() => (saved = process.env.PATH))
  afterEach(() => (process.env.PATH = saved))

  it('the KVM probe cache', async () => {
    const base = scratch()
    const target = victim(base)
    symlinkSync(target, path.join(base, 'kvm-probe.json'))
    await probeKvm('qemu-system-x86_64', path.join(base, 'kvm-probe.json'), 1000, path.join(base, 'no-kvm'))
    expect(readFileSync(target, 'utf8')).toBe('precious\n')
    expect(JSON.parse(readFileSync(path.join(base, 'kvm-probe.json'), 'utf8')).probe.usable).toBe(false)
  })

  it('the copies of the insecure keys', async () => {
    const base = scratch()
    const target = victim(base)
    for (const name of ['vmfile_insecure_key', 'vagrant_insecure_key_ed25519', 'vagrant_insecure_key_rsa'])
      symlinkSync(target, path.join(base, name))
    const keys = await insecurePrivateKeys(base)
    expect(keys).toHaveLength(3)
    expect(readFileSync(target, 'utf8')).toBe('precious\n')
    for (const key of keys) {
      expect(readFileSync(key, 'utf8')).toContain('PRIVATE KEY')
      expect(mode(key)).toBe(0o600)
    }
  })

  it('the ansible inventory', async () => {
    const base = scratch()
    const target = victim(base)
    symlinkSync(target, path.join(base, 'ansible-inventory'))
    writeFileSync(path.join(base, 'site.yml'), '- hosts: all\n  tasks: []\n')
    process.env.PATH = path.join(base, 'empty-bin') // ansible-playbook is not found: the inventory is written first
    const ssh = {
      host: '127.0.0.1',
      port: 1,
      user: 'vm',
      identityFiles: ['/k'],
      knownHostsFile: '/kh',
      hostKeyAlias: 'a',
      strictHostKeyChecking: 'yes' as const,
      forwardAgent: false,
    }
    await expect(
      runAnsible(
        {type: 'ansible', name: 'a', playbook: 'site.yml', extraVars: {}, become: false, run: 'once'} as never,
        {projectDir: base, machine: 'default', stateDir: base, target: ssh, onStdout: () => {}, onStderr: () => {}} as never,
      ),
    ).rejects.toThrow(/ansible-playbook/)
    expect(readFileSync(target, 'utf8')).toBe('precious\n')
    expect(readFileSync(path.join(base, 'ansible-inventory'), 'utf8')).toContain('ansible_port=1')
  })

  it('a lock file: a planted link is not followed', async () => {
    const base = scratch()
    const target = victim(base)
    symlinkSync(target, path.join(base, 'net.lock'))
    const release = await acquireFileLock(path.join(base, 'net.lock'))
    expect(readFileSync(target, 'utf8')).toBe('precious\n')
    expect(lstatSync(path.join(base, 'net.lock')).isFile()).toBe(true)
    expect(JSON.parse(readFileSync(path.join(base, 'net.lock'), 'utf8')).pid).toBe(process.pid)
    await release()
  })
})

describe('private state has private modes', () => {
  const project = (): string => {
    const dir = scratch()
    chmodSync(dir, 0o755)
    return dir
  }

  it('locking a machine makes .vm/ and the machine directory 0700, narrowing wider ones', async () => {
    const dir = project()
    mkdirSync(path.join(dir, '.vm/machines'), {recursive: true, mode: 0o755})
    chmodSync(path.join(dir, '.vm'), 0o755)
    chmodSync(path.join(dir, '.vm/machines'), 0o775)
    const release = await lockMachine(path.join(dir, '.vm/machines/web/lock'), 'web')
    await release()
    expect(mode(dir)).toBe(0o755)
    expect(mode(path.join(dir, '.vm'))).toBe(0o700)
    expect(mode(path.join(dir, '.vm/machines'))).toBe(0o700)
    expect(mode(path.join(dir, '.vm/machines/web'))).toBe(0o700)
  })

  it('machine.json is 0600 in a 0700 machine directory', async () => {
    const dir = project()
    const file = path.join(dir, '.vm/machines/web/machine.json')
    await writeRecord(file, {format: 1, id: 'x', name: 'web'} as MachineRecord)
    expect(mode(file)).toBe(0o600)
    expect(mode(path.join(dir, '.vm'))).toBe(0o700)
    expect(mode(path.dirname(file))).toBe(0o700)
  })

  it('a disk overlay is 0600 whatever the umask', async () => {
    const dir = scratch()
    const base = path.join(dir, 'base.qcow2')
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M'])
    const old = process.umask(0o022)
    try {
      await createOverlay(base, 'qcow2', path.join(dir, 'disk0.qcow2'))
    } finally {
      process.umask(old)
    }
    expect(mode(path.join(dir, 'disk0.qcow2'))).toBe(0o600)
  })

  it('a machine key pair is 0600', async () => {
    const dir = scratch()
    await generateKeyPair(path.join(dir, 'id_ed25519'), 'test')
    expect(mode(path.join(dir, 'id_ed25519'))).toBe(0o600)
    expect(mode(path.join(dir, 'id_ed25519.pub'))).toBe(0o600)
  })
})
