import {execFile, execFileSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {insecureLoginWorks, machineFixture, vm, type CliResult, type MachineFixture} from '../helpers/vm-cli.js'

interface Status {
  name: string
  state: string
  ssh?: {port: number}
}

const execFileAsync = promisify(execFile)
const VMFILE = 'box: vmfile/tiny\nmemory: 512M\nsynced_folders: false\n'

/** The host key lines of a machine's known_hosts, without the alias they are pinned under. */
function hostKeys(project: string): string[] {
  return readFileSync(path.join(project, '.vm/machines/default/known_hosts'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split(' ').slice(1).join(' '))
}

/**
 * End-to-end: a tiny machine with a file written in it is packaged; the box is added with
 * vm box add and a new machine boots from it (the file there, its own key in, the insecure key
 * out, new host keys); the packaged machine boots again and takes a new key; Vagrant adds the box.
 */
describe('vm package', () => {
  let fixture: MachineFixture
  let work: string
  let second: string
  let box: string
  let originalKeys: string[]
  let vagrantAdd: Promise<string>
  let packaged: {file: string; state: string; hostKeys: string; kernel: boolean; virtualSize: number; timings: Record<string, number>}
  const status = async (run: (args: string[]) => Promise<CliResult>): Promise<Status> =>
    (JSON.parse((await run(['status', '--json'])).stdout) as {result: {machines: Status[]}}).result.machines[0]!
  const runSecond = (args: string[]): Promise<CliResult> => vm(args, {cwd: second, env: fixture.env, timeoutMs: 300_000})

  beforeAll(async () => {
    fixture = machineFixture('package', 'tiny')
    work = mkdtempSync(path.join(tmpdir(), 'vm-e2e-package-'))
    second = path.join(work, 'second')
    mkdirSync(second)
    chmodSync(second, 0o755)
    writeFileSync(path.join(fixture.project, 'Vmfile'), VMFILE)
    writeFileSync(path.join(second, 'Vmfile'), 'box: test/packaged\nmemory: 512M\nsynced_folders: false\n')
    writeFileSync(path.join(work, 'notes.txt'), 'shipped with the box\n')
    box = path.join(work, 'packaged.box')
    const up = await fixture.run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect((await fixture.run(['ssh', '-c', 'echo before-package > ~/marker'])).code).toBe(0)
    originalKeys = hostKeys(fixture.project)
  }, 180_000)

  afterAll(async () => {
    await vagrantAdd?.catch(() => undefined)
    await runSecond(['destroy', '-f'])
    await fixture.cleanup()
    rmSync(work, {recursive: true, force: true})
  }, 120_000)

  it('packages the running machine and leaves it powered off', {timeout: 180_000}, async () => {
    const start = Date.now()
    const result = await fixture.run(['package', '--output', box, '--include', path.join(work, 'notes.txt'), '--json'])
    expect(result.code, result.stdout + result.stderr).toBe(0)
    packaged = (JSON.parse(result.stdout) as {result: typeof packaged}).result
    console.log(`vm package (tiny) in ${((Date.now() - start) / 1000).toFixed(1)} s: ${JSON.stringify(packaged.timings)}`)
    // Stopped at once: the guest's filesystems were synced and read-only, no power-off awaited.
    expect(packaged).toMatchObject({file: box, state: 'poweroff', hostKeys: 'removed', kernel: true, virtualSize: 2, halt: 'quit'})
    expect((await status(fixture.run)).state).toBe('poweroff')
    const entries = execFileSync('tar', ['--zstd', '-tf', box], {encoding: 'utf8'}).trim().split('\n')
    // metadata.json first, the disk last (all before it is written while the disk is exported).
    expect(entries).toEqual(['metadata.json', 'vmlinux', 'initrd.img', 'Vagrantfile', 'include/notes.txt', 'box.img'])
    const metadata = JSON.parse(execFileSync('tar', ['--zstd', '-xOf', box, 'metadata.json'], {encoding: 'utf8'})) as Record<
      string,
      unknown
    >
    expect(metadata).toMatchObject({
      provider: 'libvirt',
      format: 'qcow2',
      virtual_size: 2,
      kernel: 'vmlinux',
      initrd: 'initrd.img',
      ssh_user: 'vm',
    })
    // The record tells the truth: the machine's own key is gone from the guest, the host key unpinned.
    const record = JSON.parse(readFileSync(path.join(fixture.project, '.vm/machines/default/machine.json'), 'utf8')) as {
      ssh: {keyReplaced: boolean}
    }
    expect(record.ssh.keyReplaced).toBe(false)
  })

  it(
    'vm box add takes the package; a machine made from it has the file, its own key and new host keys; the packaged machine boots again with a new key',
    {timeout: 240_000},
    async () => {
      // Vagrant reads the archive meanwhile (checked in the next test).
      vagrantAdd = addToVagrant(path.join(work, 'vagrant'), box)
      const added = await runSecond(['box', 'add', '--name', 'test/packaged', box])
      expect(added.code, added.stderr).toBe(0)
      // Both machines boot at once: the one made from the box and the packaged one.
      const [up, again] = await Promise.all([runSecond(['up']), fixture.run(['up'])])
      expect(up.code, up.stdout + up.stderr).toBe(0)
      expect(again.code, again.stdout + again.stderr).toBe(0)
      for (const [run, project] of [
        [runSecond, second],
        [fixture.run, fixture.project],
      ] as const) {
        expect((await run(['ssh', '-c', 'cat ~/marker'])).stdout.trim()).toBe('before-package')
        // The disk was left clean, as an unmount leaves it: no journal to replay, nothing to check.
        const kernelLog = (await run(['ssh', '-c', 'sudo -n dmesg'])).stdout
        expect(kernelLog).toMatch(/EXT4-fs \(vd[a-z]\d*\): mounted filesystem/)
        expect(kernelLog).not.toMatch(/recovery complete|unchecked fs|orphan/)
        expect(insecureLoginWorks(work, (await status(run)).ssh!.port)).toBe(false)
        const keys = hostKeys(project)
        expect(keys.length).toBeGreaterThan(0)
        for (const key of keys) expect(originalKeys).not.toContain(key)
      }
    },
  )

  it('vagrant box add accepts the package', {timeout: 120_000}, async () => {
    expect(await vagrantAdd).toMatch(/^test\/packaged\s+\(libvirt, 0\)$/m)
  })
})

/** vagrant box add of `box` with its own home, then vagrant box list. */
async function addToVagrant(home: string, box: string): Promise<string> {
  mkdirSync(home)
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    VAGRANT_HOME: path.join(home, '.vagrant.d'),
    VAGRANT_CHECKPOINT_DISABLE: '1',
    VAGRANT_NO_COLOR: '1',
  }
  await execFileAsync('vagrant', ['box', 'add', '--name', 'test/packaged', box], {env, cwd: home, timeout: 110_000})
  return (await execFileAsync('vagrant', ['box', 'list'], {env, cwd: home, encoding: 'utf8'})).stdout
}
