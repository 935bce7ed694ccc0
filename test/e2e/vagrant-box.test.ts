import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {builtBox, keyLogin, root, vm, type CliResult} from '../helpers/vm-cli.js'

/**
 * End-to-end: a box packaged the way vagrant-libvirt documents it (user vagrant trusting one of
 * Vagrant's published insecure keys, booting from its own disk, metadata.json with provider,
 * format and virtual_size only), added from a file and from a catalog, booted, its key replaced.
 *
 * The box is made here from the tiny box's disk, without root and without booting it: the disk
 * is one ext4 filesystem (boxes/lib/common.sh disk_image), so debugfs edits it in a raw copy
 * (user vagrant in passwd/group/shadow, ~vagrant/.ssh/authorized_keys, sudoers; vm's own key
 * removed, so only Vagrant's key logs in), and the kernel and initramfs are left out of the
 * metadata, so QEMU boots the disk through its extlinux like any Vagrant box.
 */

const VAGRANT_UID = 1001
const KEYS = path.join(root, 'boxes/keys')

function run(command: string, args: string[], options: {cwd?: string} = {}): string {
  return execFileSync(command, args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options})
}

/** Runs debugfs commands against an ext4 image (writable), failing on any error it reports. */
function debugfs(image: string, commands: string[], work: string): void {
  const script = path.join(work, 'debugfs.cmds')
  writeFileSync(script, `${commands.join('\n')}\n`)
  const result = spawnSync('debugfs', ['-w', '-f', script, image], {encoding: 'utf8'})
  const errors = result.stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('debugfs '))
  if (result.status !== 0 || errors.length > 0) throw new Error(`debugfs failed: ${result.stderr}`)
}

/**
 * The tiny box's disk turned into a vagrant-libvirt style disk: user vagrant (uid 1001) whose
 * authorized_keys holds `publicKey`. Writes a qcow2 to `out`.
 */
function vagrantDisk(tinyBox: string, work: string, publicKey: string, out: string): void {
  const extracted = path.join(work, 'tiny')
  mkdirSync(extracted, {recursive: true})
  run('tar', ['-xzf', tinyBox, '-C', extracted, 'box.img'])
  const raw = path.join(work, 'disk.raw')
  run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', path.join(extracted, 'box.img'), raw])
  const cat = (file: string) => run('debugfs', ['-R', `cat ${file}`, raw])
  const edited = (file: string, line: string) => {
    const target = path.join(work, path.basename(file))
    writeFileSync(target, `${cat(file).trimEnd()}\n${line}\n`)
    return target
  }
  const passwd = edited('/etc/passwd', `vagrant:x:${VAGRANT_UID}:${VAGRANT_UID}:vagrant:/home/vagrant:/bin/sh`)
  const group = edited('/etc/group', `vagrant:x:${VAGRANT_UID}:`)
  const shadow = edited('/etc/shadow', 'vagrant:*:19000:0:99999:7:::')
  const sudoers = path.join(work, 'sudoers-vagrant')
  writeFileSync(sudoers, 'vagrant ALL=(ALL) NOPASSWD: ALL\n')
  const keys = path.join(work, 'authorized_keys')
  writeFileSync(keys, readFileSync(publicKey))
  const owned = (file: string, mode: string) => [
    `sif ${file} uid ${VAGRANT_UID}`,
    `sif ${file} gid ${VAGRANT_UID}`,
    `sif ${file} mode ${mode}`,
  ]
  const replace = (file: string, source: string, mode: string) => [
    `rm ${file}`,
    `write ${source} ${file}`,
    `sif ${file} mode ${mode}`,
    `sif ${file} uid 0`,
    `sif ${file} gid 0`,
  ]
  debugfs(
    raw,
    [
      ...replace('/etc/passwd', passwd, '0100644'),
      ...replace('/etc/group', group, '0100644'),
      ...replace('/etc/shadow', shadow, '0100640'),
      `write ${sudoers} /etc/sudoers.d/vagrant`,
      'sif /etc/sudoers.d/vagrant mode 0100440',
      'sif /etc/sudoers.d/vagrant uid 0',
      'sif /etc/sudoers.d/vagrant gid 0',
      'mkdir /home/vagrant',
      ...owned('/home/vagrant', '040755'),
      'mkdir /home/vagrant/.ssh',
      ...owned('/home/vagrant/.ssh', '040700'),
      `write ${keys} /home/vagrant/.ssh/authorized_keys`,
      ...owned('/home/vagrant/.ssh/authorized_keys', '0100600'),
      // Only Vagrant's key may log in: the box must not trust vm's own insecure key.
      'rm /home/vm/.ssh/authorized_keys',
    ],
    work,
  )
  run('e2fsck', ['-fn', raw]) // exits non-zero (and run throws) if the edits left the filesystem inconsistent
  run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, out])
  rmSync(raw)
  rmSync(extracted, {recursive: true})
}

/** A .box archive of `dir`'s files, metadata.json first, as Vagrant packs one. */
function pack(dir: string, out: string): void {
  const files = readdirSync(dir).filter((file) => file !== 'metadata.json')
  run('tar', ['-czf', out, '-C', dir, 'metadata.json', ...files])
}

interface Case {
  label: string
  name: string
  /** Vagrant's key the box trusts. */
  key: 'vagrant_insecure_key_ed25519' | 'vagrant_insecure_key_rsa'
  multiDisk: boolean
  /** How the box reaches the store. */
  from: 'catalog' | 'file'
}

const cases: Case[] = [
  {label: 'v1 box from a file', name: 'test/vagrant-v1', key: 'vagrant_insecure_key_rsa', multiDisk: false, from: 'file'},
  {
    label: 'multi-disk v2 box from a catalog',
    name: 'test/vagrant-v2',
    key: 'vagrant_insecure_key_ed25519',
    multiDisk: true,
    from: 'catalog',
  },
]

// The two boxes have their own VM_HOME, project and machine: their blocks run at the same time,
// each one's steps in order.
describe.concurrent.each(cases)('a box packaged the vagrant-libvirt way: $label', (box) => {
  let work: string
  let home: string
  let project: string
  let env: NodeJS.ProcessEnv
  const vmRun = (args: string[]): Promise<CliResult> => vm(args, {cwd: project, env, timeoutMs: 300_000})

  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'vm-e2e-vagrant-'))
    home = path.join(work, 'home')
    project = path.join(work, 'project')
    mkdirSync(project, {recursive: true})
    chmodSync(project, 0o755)
    env = {VM_HOME: home}
    const boxDir = path.join(work, 'box')
    mkdirSync(boxDir)
    const firstDisk = box.multiDisk ? 'box_1.img' : 'box.img'
    vagrantDisk(builtBox('tiny'), work, path.join(KEYS, `${box.key}.pub`), path.join(boxDir, firstDisk))
    const metadata: Record<string, unknown> = {provider: 'libvirt', format: 'qcow2', virtual_size: 3}
    if (box.multiDisk) {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(boxDir, 'box_2.img'), '64M'])
      metadata.disks = [
        {path: 'box_1.img', format: 'qcow2'},
        {path: 'box_2.img', format: 'qcow2'},
      ]
    }
    writeFileSync(path.join(boxDir, 'metadata.json'), JSON.stringify(metadata))
    const published = path.join(work, 'published')
    mkdirSync(published)
    pack(boxDir, path.join(published, `${box.name.split('/')[1]}-1.0.0-amd64.box`))
    writeFileSync(path.join(project, 'Vmfile'), `box: ${box.name}\nmemory: 512M\nsynced_folders: false\n`)
  }, 120_000)

  afterAll(async () => {
    await vmRun(['destroy', '-f'])
    rmSync(work, {recursive: true, force: true})
  })

  it.sequential(`vm box add takes it from a ${box.from}`, async () => {
    const published = path.join(work, 'published')
    const archive = path.join(published, readdirSync(published)[0]!)
    let added: CliResult
    if (box.from === 'file') {
      added = await vmRun(['box', 'add', '--name', box.name, archive])
    } else {
      const catalog = await vmRun(['box', 'catalog', published, '--name', box.name])
      expect(catalog.code, catalog.stderr).toBe(0)
      added = await vmRun(['box', 'add', path.join(published, `${box.name.split('/')[1]}.json`)])
    }
    expect(added.code, added.stderr).toBe(0)
    const list = await vmRun(['box', 'list', '--json'])
    expect(list.stdout).toContain(box.name)
  })

  it.sequential('vm up logs in as vagrant with the Vagrant key, then replaces it with the machine key', async () => {
    const up = await vmRun(['up'])
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0)
    const who = await vmRun(['ssh', '-c', 'id -un; cat /sys/block/vda/size; ls /sys/block; sudo -n id -u'])
    expect(who.code, who.stderr).toBe(0)
    const [user, sectors, ...rest] = who.stdout.trim().split('\n')
    expect(user).toBe('vagrant')
    // virtual_size 3 (GB): the machine's first disk is 3 GiB, though the box's disk is 2.
    expect(Number(sectors) * 512).toBe(3 * 1024 ** 3)
    if (box.multiDisk) expect(rest.join(' ')).toMatch(/\bvdb\b/)
    expect(rest.at(-1)).toBe('0')
  })

  it.sequential("Vagrant's key no longer logs in: the machine's own key replaced it", async () => {
    const config = (await vmRun(['ssh-config'])).stdout
    const port = /^\s*Port (\d+)$/m.exec(config)?.[1]
    expect(port).toBeDefined()
    expect(config).toMatch(/^\s*User vagrant$/m)
    const login = keyLogin(work, Number(port), path.join(KEYS, box.key), 'vagrant')
    expect(login.ok).toBe(false)
    expect(login.stderr).toMatch(/Permission denied/)
    const authorized = await vmRun(['ssh', '-c', 'cat ~/.ssh/authorized_keys'])
    expect(authorized.stdout).not.toContain(readFileSync(path.join(KEYS, `${box.key}.pub`), 'utf8').split(' ')[1])
  })

  it.sequential('halt, up again with its own key, destroy', async () => {
    expect((await vmRun(['ssh', '-c', 'echo kept > ~/marker && sync'])).code).toBe(0)
    const halt = await vmRun(['halt'])
    expect(halt.code, halt.stderr).toBe(0)
    const up = await vmRun(['up'])
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0)
    expect((await vmRun(['ssh', '-c', 'id -un; cat ~/marker'])).stdout.trim()).toBe('vagrant\nkept')
    const destroy = await vmRun(['destroy', '-f'])
    expect(destroy.code, destroy.stderr).toBe(0)
    const status = JSON.parse((await vmRun(['status', '--json'])).stdout) as {result: {machines: Array<{state: string}>}}
    expect(status.result.machines[0]?.state).toBe('not_created')
  })

  // Once, on the box added from a file: the Vmfile's ssh settings against a real guest.
  if (box.from === 'file') {
    it.sequential('a user the guest does not have: the error names the user and every key tried, and what to set', async () => {
      writeFileSync(path.join(project, 'Vmfile'), `box: ${box.name}\nmemory: 512M\nsynced_folders: false\nssh: {username: nobody}\n`)
      // vm waits out a refused key for 20 s (a guest may add it late); VM_KEY_REFUSED_MS shortens that here.
      const up = await vm(['up'], {cwd: project, env: {...env, VM_KEY_REFUSED_MS: '2000'}, timeoutMs: 300_000})
      expect(up.code).not.toBe(0)
      expect(up.stderr).toContain('refuses user nobody')
      for (const key of ['vmfile_insecure_key', 'vagrant_insecure_key_ed25519', 'vagrant_insecure_key_rsa'])
        expect(up.stderr).toContain(path.join(KEYS, key))
      expect(up.stderr).toContain('ssh.private_key_path')
      expect(up.stderr).not.toMatch(/vm destroy|\.pub\b/)
      expect((await vmRun(['destroy', '-f'])).code).toBe(0)
    })

    it.sequential('private_key_path with insert_key: false keeps logging in with that key, and vm up warns', async () => {
      writeFileSync(path.join(project, 'box-key'), readFileSync(path.join(KEYS, box.key)), {mode: 0o600})
      writeFileSync(
        path.join(project, 'Vmfile'),
        `box: ${box.name}\nmemory: 512M\nsynced_folders: false\nssh: {private_key_path: box-key, insert_key: false}\n`,
      )
      const up = await vmRun(['up'])
      expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0)
      expect(up.stderr).toMatch(/insert_key is false: .*box-key/)
      expect((await vmRun(['ssh', '-c', 'id -un'])).stdout.trim()).toBe('vagrant')
      expect((await vmRun(['ssh-config'])).stdout).toContain(`IdentityFile ${path.join(project, 'box-key')}`)
      const authorized = await vmRun(['ssh', '-c', 'cat ~/.ssh/authorized_keys'])
      expect(authorized.stdout).toContain(readFileSync(path.join(KEYS, `${box.key}.pub`), 'utf8').split(' ')[1])
      expect((await vmRun(['destroy', '-f'])).code).toBe(0)
    })
  }
})
