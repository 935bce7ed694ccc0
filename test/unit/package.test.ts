import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import {unpackStream} from '../../src/box/archive.js'
import {writeBoxArchive} from '../../src/box/archive-write.js'
import {repackageBox} from '../../src/box/repackage.js'
import type {MachineDriver} from '../../src/driver/driver.js'
import {exportArgs} from '../../src/driver/qemu/img.js'
import {qemuDriver} from '../../src/driver/qemu/driver.js'
import {registerDriver} from '../../src/driver/registry.js'
import {UsageError, UserError} from '../../src/errors/errors.js'
import {packageMachine} from '../../src/machine/package.js'
import {
  archiveFiles,
  defaultVagrantfile,
  FILESYSTEMS_LINE,
  guestPrepareScript,
  HOST_KEYS_LINE,
  includeEntries,
  packageMetadata,
  virtualSizeGb,
} from '../../src/machine/package-contents.js'
import type {MachineRecord} from '../../src/machine/record.js'
import {machinePaths} from '../../src/state/machine-files.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'
import Package from '../../src/commands/package.js'
import {key, storeWith} from '../helpers/box-users.js'
import {runCommand, tempProject} from '../helpers/run-command.js'

const GIB = 1024 ** 3
const directBox = {
  architecture: 'amd64',
  kernel: '/store/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/vmlinux',
  initrd: '/store/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/initrd.img',
  cmdline: 'root=UUID=x rw console=ttyS0',
  firmware: 'qboot',
}

describe('what vm package puts in a box', () => {
  it('metadata.json: a libvirt qcow2 box with virtual_size in GB, and the kernel under its name in the archive', () => {
    const metadata = packageMetadata({box: directBox, diskBytes: 2 * GIB, boxVirtualSize: 2, sshUser: 'vm'})
    expect(metadata).toEqual({
      provider: 'libvirt',
      format: 'qcow2',
      virtual_size: 2,
      architecture: 'amd64',
      kernel: 'vmlinux',
      initrd: 'initrd.img',
      cmdline: 'root=UUID=x rw console=ttyS0',
      firmware: 'qboot',
      ssh_user: 'vm',
    })
    // The disk last: everything before it is written while the disk is exported.
    expect(archiveFiles(metadata, includeEntries(['/a/notes.txt']))).toEqual([
      'metadata.json',
      'vmlinux',
      'initrd.img',
      'Vagrantfile',
      'include/notes.txt',
      'box.img',
    ])
  })

  it('a box that boots from its disk has no kernel fields and no kernel in the archive', () => {
    const metadata = packageMetadata({box: {architecture: 'amd64'}, diskBytes: 10 * GIB + 1, boxVirtualSize: undefined, sshUser: 'vagrant'})
    expect(metadata).toEqual({provider: 'libvirt', format: 'qcow2', virtual_size: 11, architecture: 'amd64', ssh_user: 'vagrant'})
    expect(archiveFiles(metadata, [])).toEqual(['metadata.json', 'Vagrantfile', 'box.img'])
  })

  it('virtual_size rounds the disk up to whole GB, never below the original box', () => {
    expect(virtualSizeGb(GIB, undefined)).toBe(1)
    expect(virtualSizeGb(GIB + 1, undefined)).toBe(2)
    expect(virtualSizeGb(2 * GIB, 5)).toBe(5)
    expect(virtualSizeGb(512 * 1024 ** 2, undefined)).toBe(1)
  })

  it('--include files go under include/; two of one name are refused', () => {
    expect(includeEntries(['/x/a.txt', '/y/b.txt'])).toEqual([
      {source: '/x/a.txt', entry: 'include/a.txt'},
      {source: '/y/b.txt', entry: 'include/b.txt'},
    ])
    expect(() => includeEntries(['/x/a.txt', '/y/a.txt'])).toThrow(UsageError)
    expect(() => includeEntries(['/x/a.txt', '/y/a.txt'])).toThrow(/would both be include\/a\.txt/)
  })

  it('the default Vagrantfile boots the box as vm does, with Ruby strings that cannot interpolate', () => {
    const metadata = packageMetadata({box: {...directBox, cmdline: 'a="#{x}" \\ b'}, diskBytes: GIB, boxVirtualSize: 1, sshUser: 'vm'})
    const text = defaultVagrantfile(metadata)
    expect(text).toContain('config.ssh.username = "vm"')
    expect(text).toContain('libvirt.kernel = File.join(File.dirname(__FILE__), "vmlinux")')
    expect(text).toContain('libvirt.initrd = File.join(File.dirname(__FILE__), "initrd.img")')
    expect(text).toContain(String.raw`libvirt.cmd_line = "a=\"\#{x}\" \\ b"`)
    const vagrantUser = defaultVagrantfile(
      packageMetadata({box: {architecture: 'amd64'}, diskBytes: GIB, boxVirtualSize: 1, sshUser: 'vagrant'}),
    )
    expect(vagrantUser).not.toContain('ssh.username')
    expect(vagrantUser).not.toContain('kernel')
  })

  it("the guest script puts the box's keys in place after the rest, quoted, then makes the filesystems read-only, last", () => {
    const script = guestPrepareScript(["ssh-ed25519 AAAA it's"])
    expect(script).toContain(String.raw`printf '%s\n' 'ssh-ed25519 AAAA it'\''s' >"$HOME/.ssh/authorized_keys.new"`)
    const order = [
      'dropbear_*_host_key',
      ': >/etc/machine-id',
      'mv -f "$1/.ssh/authorized_keys.new" "$1/.ssh/authorized_keys"',
      'sync',
      'echo u >/proc/sysrq-trigger',
    ]
    const at = order.map((text) => script.indexOf(text))
    expect(at.every((index) => index > 0)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    expect(script.trimEnd().split('\n').at(-2)).toBe('echo "vm-package: filesystems $state"')
    // A failed root part leaves the machine's own key in force.
    expect(script).toContain('|| { status=$?; rm -f "$HOME/.ssh/authorized_keys.new"; exit "$status"; }')
    expect(guestPrepareScript(undefined)).not.toContain('authorized_keys')
    expect(HOST_KEYS_LINE.exec('x\nvm-package: host keys removed\n')?.[1]).toBe('removed')
    expect(FILESYSTEMS_LINE.exec('vm-package: host keys removed\nvm-package: filesystems read-only\n')?.[1]).toBe('read-only')
  })

  it('the guest starts sudo (or, logged in as root, sh) at once: no id run to ask, no mkdir when ~/.ssh is there', () => {
    // A stand-in guest: programs on PATH that log their calls; the root part goes to the fake sudo/sh.
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-package-guest-'))
    const bin = path.join(dir, 'bin')
    const home = path.join(dir, 'home')
    mkdirSync(bin)
    mkdirSync(path.join(home, '.ssh'), {recursive: true})
    const log = path.join(dir, 'calls')
    for (const program of ['id', 'mkdir', 'sudo'])
      writeFileSync(path.join(bin, program), `#!/bin/sh\necho "${program} $*" >>'${log}'\ncat >/dev/null\n`, {mode: 0o755})
    const run = (script: string): string[] => {
      writeFileSync(log, '')
      execFileSync('/bin/sh', ['-s'], {input: script, env: {PATH: `${bin}:/usr/bin:/bin`, HOME: home}})
      return readFileSync(log, 'utf8').trim().split('\n')
    }
    // The login's parent (for a dropbear guest, the dropbear that serves it) goes to the root part.
    expect(run(guestPrepareScript(['ssh-ed25519 AAAA k']))).toEqual([`sudo -n sh -s -- ${home} ${process.pid}`])
    expect(readFileSync(path.join(home, '.ssh/authorized_keys.new'), 'utf8')).toBe('ssh-ed25519 AAAA k\n')
    // Logged in as root: the root part runs in a plain sh, no sudo (its text is checked: it would change this host).
    const asRoot = guestPrepareScript(['ssh-ed25519 AAAA k'], false, true)
    expect(asRoot).toContain(`sh -s -- "$HOME" "$PPID" <<'VM_PACKAGE_ROOT'`)
    expect(asRoot).not.toContain('sudo')
    expect(asRoot).not.toContain('id -u')
    rmSync(dir, {recursive: true, force: true})
  })

  it('a machine of a cloud image is packaged as a cloud image: no key trusted, cloud-init reset', () => {
    const metadata = packageMetadata({box: {architecture: 'amd64'}, diskBytes: GIB, boxVirtualSize: 3, sshUser: 'vm', cloudInit: true})
    expect(metadata).toMatchObject({cloud_init: true, ssh_user: 'vm', virtual_size: 3})
    expect(packageMetadata({box: {architecture: 'amd64'}, diskBytes: GIB, boxVirtualSize: 3, sshUser: 'vm'})).not.toHaveProperty(
      'cloud_init',
    )
    const script = guestPrepareScript([], true)
    expect(script).toContain('cloud=1')
    expect(script).toContain('cloud-init clean --logs')
    expect(script).toContain(': >"$HOME/.ssh/authorized_keys.new"')
    expect(guestPrepareScript([])).toContain('cloud=0')
  })

  it('the QEMU engine exports a flattened qcow2 with zstd-compressed clusters, written out of order', () => {
    expect(qemuDriver.features.exportDisk).toBe(true)
    expect(exportArgs('/m/disk0.qcow2', '/o/box.img')).toEqual([
      'convert',
      '-q',
      '-W',
      '-c',
      '-O',
      'qcow2',
      '-o',
      'compression_type=zstd',
      '/m/disk0.qcow2',
      '/o/box.img',
    ])
  })
})

describe('vm package refuses before changing anything', () => {
  let dir: string
  let unregister: (() => void) | undefined
  const vmfile = 'box: org/box\nsynced_folders: false\n'

  beforeEach(() => {
    dir = tempProject('vm-package-')
    writeFileSync(path.join(dir, 'Vmfile'), vmfile)
  })

  afterEach(() => {
    unregister?.()
    unregister = undefined
  })

  /** A running machine of an engine that declares no exportDisk. */
  function machineOnEngineWithoutExport(): {stops: number} {
    const seen = {stops: 0}
    const driver: MachineDriver = {
      ...qemuDriver,
      name: 'noexport',
      displayName: 'no-export engine',
      features: {...qemuDriver.features, exportDisk: false},
      exportDisk: undefined,
      inspect: async () => ({alive: true, pid: 4242, cleanPowerOff: false}),
      stop: async (machine) => {
        seen.stops++
        return {method: 'acpi', record: machine.record}
      },
    }
    unregister = registerDriver(driver)
    const paths = machinePaths(dir, 'default')
    mkdirSync(paths.dir, {recursive: true})
    const record: MachineRecord = {
      format: 1,
      id: '0123456789abcdef',
      name: 'default',
      projectDir: dir,
      driver: 'noexport',
      createdAt: new Date().toISOString(),
      box: {
        name: 'org/box',
        version: '1.0.0',
        architecture: 'amd64',
        provider: 'libvirt',
        disks: [{path: '/nowhere/box.img', format: 'qcow2'}],
      },
      config: resolveVmfileText(vmfile, path.join(dir, 'Vmfile')).machines[0]!,
      macs: ['52:54:00:12:34:56'],
      ssh: {host: '127.0.0.1', port: 2222, user: 'vm', keyReplaced: true},
      lastState: 'running',
      updatedAt: new Date().toISOString(),
    }
    writeFileSync(paths.record, JSON.stringify(record))
    return seen
  }

  it('on an engine without exportDisk: UNSUPPORTED, the machine untouched, no file written', async () => {
    const seen = machineOnEngineWithoutExport()
    const before = readFileSync(machinePaths(dir, 'default').record, 'utf8')
    const attempt = packageMachine(dir, 'default', {cwd: dir}, {info: () => {}, warn: () => {}})
    await expect(attempt).rejects.toThrow(UserError)
    await expect(attempt).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringMatching(/runs on the "noexport" engine, which cannot package machines/),
    })
    expect(seen.stops).toBe(0)
    expect(readFileSync(machinePaths(dir, 'default').record, 'utf8')).toBe(before)
    expect(existsSync(path.join(dir, 'package.box'))).toBe(false)
  })

  it('a machine that was never created: NOT_CREATED and a hint, with --json', async () => {
    const {stdout, exitCode} = await runCommand(Package, ['--json', '--cwd', dir])
    expect(exitCode).not.toBe(0)
    const json = JSON.parse(stdout) as {error: {code: string; hint?: string}}
    expect(json.error.code).toBe('NOT_CREATED')
    expect(json.error.hint).toMatch(/vm up default/)
    expect(existsSync(path.join(dir, 'package.box'))).toBe(false)
  })

  it('a missing --include or --vagrantfile, or an existing output, is refused first', async () => {
    machineOnEngineWithoutExport()
    const include = await runCommand(Package, ['--json', '--cwd', dir, '--include', 'nope.txt'])
    expect(include.exitCode).not.toBe(0)
    expect(include.stdout).toMatch(/--include .*nope\.txt: no such file/)
    const vagrantfile = await runCommand(Package, ['--json', '--cwd', dir, '--vagrantfile', 'Vagrantfile.none'])
    expect(vagrantfile.stdout).toMatch(/--vagrantfile .*Vagrantfile\.none: no such file/)
    writeFileSync(path.join(dir, 'package.box'), 'old')
    const exists = await runCommand(Package, ['--json', '--cwd', dir])
    expect(JSON.parse(exists.stdout)).toMatchObject({error: {code: 'FILE_EXISTS'}})
    expect(readFileSync(path.join(dir, 'package.box'), 'utf8')).toBe('old')
  })

  it('--include takes commas (as Vagrant) and repeats, and leaves the machine name alone', async () => {
    machineOnEngineWithoutExport()
    writeFileSync(path.join(dir, 'a.txt'), 'a')
    const {stdout} = await runCommand(Package, ['--json', '--cwd', dir, '--include', 'a.txt,b.txt', 'default'])
    expect(stdout).toMatch(/--include .*b\.txt: no such file/)
    const repeated = await runCommand(Package, ['--json', '--cwd', dir, '--include', 'a.txt', '--include', 'a.txt', 'default'])
    expect(repeated.stdout).toMatch(/would both be include\/a\.txt/)
  })

  it('an unknown machine name is refused with the names there are', async () => {
    const {stdout, exitCode} = await runCommand(Package, ['nosuch', '--json', '--cwd', dir])
    expect(exitCode).not.toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({error: {code: 'NO_SUCH_MACHINE'}})
  })
})

describe('the box archive writer (vm package, vm box repackage)', () => {
  it('writes archives vm box add reads back: zstd and gzip, metadata.json first, sha256 of the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-archive-'))
    const source = path.join(dir, 'in')
    mkdirSync(path.join(source, 'include'), {recursive: true})
    writeFileSync(path.join(source, 'metadata.json'), '{"provider":"libvirt","format":"qcow2"}')
    writeFileSync(path.join(source, 'payload.bin'), randomBytes(3 << 20))
    writeFileSync(path.join(source, 'include', 'notes.txt'), 'hello')
    const files = ['metadata.json', 'payload.bin', 'include/notes.txt']
    for (const compression of ['zstd', 'gzip'] as const) {
      const file = path.join(dir, `out.${compression}.box`)
      const written = await writeBoxArchive({dir: source, files, file, compression})
      expect(written.sha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'))
      const target = path.join(dir, `unpacked-${compression}`)
      const unpacked = await unpackStream(createReadStream(file), {dir: target, checksumType: 'sha256', where: file})
      expect(unpacked).toMatchObject({kind: 'tar', compression, digest: written.sha256})
      expect(unpacked.files).toEqual(files)
      for (const name of files) expect(readFileSync(path.join(target, name)).equals(readFileSync(path.join(source, name)))).toBe(true)
      expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([])
    }
  })

  it('vm box repackage still writes a stored box out (gzip), refusing to overwrite without --force', async () => {
    const home = storeWith([key('1.0.0')])
    const cwd = mkdtempSync(path.join(tmpdir(), 'vm-repackage-'))
    const result = await repackageBox({name: 'org/box', version: '1.0.0', cwd, env: home.env})
    expect(path.basename(result.file)).toBe('org-box-1.0.0-amd64.box')
    const unpacked = await unpackStream(createReadStream(result.file), {dir: path.join(cwd, 'x'), checksumType: 'sha256', where: 'r'})
    expect(unpacked).toMatchObject({compression: 'gzip', files: ['metadata.json', 'box.img']})
    await expect(repackageBox({name: 'org/box', version: '1.0.0', cwd, env: home.env})).rejects.toMatchObject({code: 'FILE_EXISTS'})
    vi.unstubAllEnvs()
  })
})
