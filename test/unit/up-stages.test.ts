import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import type {CreatedMachine, DriverMachine, MachineDriver, StartOptions} from '../../src/driver/driver.js'
import {registerDriver} from '../../src/driver/registry.js'
import {UserError, VmError} from '../../src/errors/errors.js'
import {openSsh, type GuestAccess} from '../../src/machine/boot-context.js'
import {clockCommand, CLOCK_PROMPT} from '../../src/machine/guest-clock.js'
import {destroyMachine, haltMachine} from '../../src/machine/halt.js'
import {inspectMachine} from '../../src/machine/inspect.js'
import type {MachineRecord} from '../../src/machine/record.js'
import {upMachine} from '../../src/machine/up.js'
import type {SshTarget} from '../../src/ssh/options.js'
import {machinePaths} from '../../src/state/machine-files.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'
import {key, project, storeWith} from '../helpers/box-users.js'

/**
 * vm up's stages against an engine that is not QEMU: a fake driver that records what it is
 * asked and keeps its "machine" in memory, and a guest reached through recorded SSH calls.
 * What this proves: orchestration needs nothing but the MachineDriver interface.
 */

interface FakeDriver extends MachineDriver {
  calls: string[]
  /** The first-disk size createDisks was given, per call (MiB; undefined keeps the box's). */
  diskSizes: Array<number | undefined>
  running: boolean
  failStart?: Error | undefined
  sshPort: number
}

function fakeDriver(): FakeDriver {
  const driver: FakeDriver = {
    name: 'fake',
    displayName: 'fake engine',
    features: {shares: ['rsync'], networks: [], ssh: 'guest-address', snapshots: false, suspend: false},
    natAddress: undefined,
    calls: [],
    diskSizes: [],
    running: false,
    sshPort: 2222,
    async probeHost() {
      driver.calls.push('probeHost')
      return {accel: 'fake-accel'}
    },
    validate: () => [],
    diskFiles: (machine, count) => Array.from({length: count}, (_unused, index) => path.join(machine.dir, `fake${index}.img`)),
    async createDisks(machine: CreatedMachine, sizeMiB) {
      driver.calls.push('createDisks')
      driver.diskSizes.push(sizeMiB)
      writeFileSync(path.join(machine.dir, 'fake0.img'), 'disk')
    },
    async start(machine: CreatedMachine, _host, options: StartOptions) {
      driver.calls.push('start')
      await options.save(machine.record)
      if (driver.failStart !== undefined) throw driver.failStart
      driver.running = true
      return {record: machine.record, ssh: {host: '192.0.2.7', port: driver.sshPort}, accel: 'fake-accel'}
    },
    bootWatch: () => ({
      engine: 'fake engine',
      isAlive: () => driver.running,
      consoleTail: async () => 'fake console',
      bootEvidence: async () => ['console: fake console'],
    }),
    async inspect() {
      return {alive: driver.running, pid: driver.running ? 4242 : undefined, cleanPowerOff: false}
    },
    async stop(machine: DriverMachine, graceMs: number) {
      driver.calls.push(`stop ${graceMs}`)
      const was = driver.running
      driver.running = false
      return {method: was ? 'acpi' : 'already-stopped', record: machine.record}
    },
    async destroy() {
      driver.calls.push('destroy')
      driver.running = false
      return {ids: []}
    },
  }
  return driver
}

interface FakeGuest extends GuestAccess {
  waits: SshTarget[]
  commands: Array<{target: SshTarget; command: string; input?: string | undefined}>
}

/** What a guest was asked besides setting its host name (which every first boot does). */
const otherCommands = (guest: FakeGuest) => guest.commands.filter((call) => !(call.input ?? '').includes('/etc/hostname'))

/** A guest that answers at once and accepts whatever key it was last given. */
function fakeGuest(): FakeGuest {
  const guest: FakeGuest = {
    waits: [],
    commands: [],
    waitForSsh: async (options) => {
      guest.waits.push(options.target)
      return 1234
    },
    runInGuest: async (target, command, options) => {
      guest.commands.push({target, command, input: options?.input?.toString()})
      return {code: 0, stdout: '', stderr: ''}
    },
    guestAcceptsKey: async () => true,
  }
  return guest
}

const events = () => ({info: vi.fn(), warn: vi.fn(), progress: vi.fn()})

let driver: FakeDriver
let unregister: () => void
let dir: string

function config(extra = '') {
  mkdirSync(dir, {recursive: true})
  const folders = extra.includes('synced_folders') ? '' : 'synced_folders: false\n'
  const text = `box: org/box\nbox_version: "1.0.0"\n${folders}${extra}`
  writeFileSync(path.join(dir, 'Vmfile'), text)
  return resolveVmfileText(text, path.join(dir, 'Vmfile')).machines[0]!
}

function record(): MachineRecord {
  return JSON.parse(readFileSync(machinePaths(dir, 'default').record, 'utf8')) as MachineRecord
}

/** config() for a project in another directory. */
function config2(projectDir: string, extra: string) {
  mkdirSync(projectDir, {recursive: true})
  const text = `box: org/box\nbox_version: "1.0.0"\nsynced_folders: false\n${extra}`
  writeFileSync(path.join(projectDir, 'Vmfile'), text)
  return resolveVmfileText(text, path.join(projectDir, 'Vmfile')).machines[0]!
}

beforeEach(() => {
  const home = storeWith([key('1.0.0')])
  dir = project(home.home, 'fake')
  driver = fakeDriver()
  unregister = registerDriver(driver)
})

afterEach(() => {
  unregister()
  vi.unstubAllEnvs()
})

describe('vm up against a fake driver', () => {
  it('first boot: disks made, started, SSH reached at the endpoint the driver returned, the insecure key replaced', async () => {
    const guest = fakeGuest()
    const result = await upMachine(dir, config(), events(), {driver: 'fake'}, guest)
    expect(result).toMatchObject({created: true, alreadyRunning: false, accel: 'fake-accel', bootMs: 1234})
    // The box declares no ssh_user: Vagrant's convention, user vagrant.
    expect(result.ssh).toEqual({host: '192.0.2.7', port: 2222, user: 'vagrant'})
    expect(driver.calls).toEqual(['createDisks', 'probeHost', 'start'])
    expect(guest.waits[0]).toMatchObject({host: '192.0.2.7', port: 2222, user: 'vagrant', strictHostKeyChecking: 'accept-new'})
    // vm's insecure key first, then Vagrant's published ones (ed25519, RSA).
    const firstKeys = guest.waits[0]!.identityFiles.map((file) => path.basename(file))
    expect(firstKeys).toEqual(['vmfile_insecure_key', 'vagrant_insecure_key_ed25519', 'vagrant_insecure_key_rsa'])
    // The key replacement logged in with the insecure keys and installed the machine's own.
    const paths = machinePaths(dir, 'default')
    const publicKey = readFileSync(`${paths.privateKey}.pub`, 'utf8').trim()
    expect(otherCommands(guest)).toHaveLength(1)
    expect(guest.commands[0]!.target.identityFiles.map((file) => path.basename(file))).toEqual(firstKeys)
    expect(guest.commands[0]!.command).toContain(publicKey)
    for (const name of firstKeys) expect(existsSync(path.join(paths.dir, name))).toBe(false)
    expect(record()).toMatchObject({driver: 'fake', lastState: 'running', pending: [], ssh: {host: '192.0.2.7', keyReplaced: true}})
    expect((await inspectMachine(dir, 'default')).status.state).toBe('running')
  })

  it('second boot: the machine keeps its driver and disks, and logs in with its own key', async () => {
    await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest())
    expect((await haltMachine(dir, 'default', 1000)).method).toBe('acpi')
    expect((await inspectMachine(dir, 'default')).status.state).toBe('poweroff')
    const guest = fakeGuest()
    // No driver option now: the record says which driver owns the machine.
    const result = await upMachine(dir, config(), events(), {}, guest)
    expect(result).toMatchObject({created: false, alreadyRunning: false})
    expect(driver.calls).toEqual(['createDisks', 'probeHost', 'start', 'stop 1000', 'probeHost', 'start'])
    expect(guest.waits[0]).toMatchObject({strictHostKeyChecking: 'yes', identityFiles: [machinePaths(dir, 'default').privateKey]})
    expect(guest.commands).toEqual([])
    // A third vm up finds it running.
    expect(await upMachine(dir, config(), events(), {}, fakeGuest())).toMatchObject({alreadyRunning: true})
  })

  it('a host warning (KVM unusable) is said once per host boot, not once per machine, up or reload', async () => {
    driver.probeHost = async () => ({accel: 'tcg', warning: 'KVM cannot be used (test); using TCG software emulation.'})
    const said = events()
    await upMachine(dir, config(), said, {driver: 'fake'}, fakeGuest())
    await haltMachine(dir, 'default', 1000)
    await upMachine(dir, config(), said, {}, fakeGuest())
    await haltMachine(dir, 'default', 1000)
    await upMachine(dir, config(), said, {applyConfig: true}, fakeGuest())
    const warnings = said.warn.mock.calls.map(([text]) => String(text)).filter((text) => text.includes('KVM'))
    expect(warnings).toEqual([expect.stringMatching(/^KVM cannot be used \(test\).*once per host boot.*vm status/)])
  })

  it('the host name: the machine name made one, set once as root, again when reload changes it; in vm status', async () => {
    const guest = fakeGuest()
    mkdirSync(dir, {recursive: true})
    const text = 'box: org/box\nbox_version: "1.0.0"\nsynced_folders: false\nmachines: {Web_Server.Example: {}}\n'
    writeFileSync(path.join(dir, 'Vmfile'), text)
    const web = resolveVmfileText(text, path.join(dir, 'Vmfile')).machines[0]!
    await upMachine(dir, web, events(), {driver: 'fake'}, guest)
    const set = guest.commands.filter((call) => (call.input ?? '').includes('/etc/hostname'))
    expect(set).toHaveLength(1)
    expect(set[0]!.command).toBe('sudo -n sh -s')
    expect(set[0]!.input).toContain("printf '%s\\n' 'web-server.example' > /etc/hostname")
    expect(set[0]!.input).toContain("printf '127.0.1.1\\t%s\\n' 'web-server.example web-server'")
    expect((await inspectMachine(dir, 'Web_Server.Example')).status.hostname).toBe('web-server.example')
    // A second boot with the same name asks nothing; a reload with another one sets it.
    await haltMachine(dir, 'Web_Server.Example', 1000)
    const again = fakeGuest()
    await upMachine(dir, web, events(), {}, again)
    expect(again.commands).toEqual([])
    await haltMachine(dir, 'Web_Server.Example', 1000)
    const renamed = fakeGuest()
    await upMachine(dir, {...web, hostname: 'api.local'}, events(), {applyConfig: true}, renamed)
    expect(renamed.commands.map((call) => call.input ?? '').join('')).toContain("'api.local' > /etc/hostname")
    expect((await inspectMachine(dir, 'Web_Server.Example')).status.hostname).toBe('api.local')
  })

  it('ssh.private_key_path replaces the insecure keys for the first login; the machine key replaces it after', async () => {
    mkdirSync(path.join(dir, 'keys'), {recursive: true})
    writeFileSync(path.join(dir, 'keys', 'box_key'), 'a key')
    const guest = fakeGuest()
    await upMachine(dir, config('ssh: {username: builder, private_key_path: keys/box_key}\n'), events(), {driver: 'fake'}, guest)
    expect(guest.waits[0]).toMatchObject({user: 'builder', identityFiles: [path.join(dir, 'keys', 'box_key')]})
    expect(guest.commands[0]!.target.identityFiles).toEqual([path.join(dir, 'keys', 'box_key')])
    expect(existsSync(path.join(machinePaths(dir, 'default').dir, 'vmfile_insecure_key'))).toBe(false)
    expect(record().ssh).toMatchObject({keyReplaced: true, user: 'builder'})
    expect(record().ssh?.loginKeys).toBeUndefined()
  })

  it('ssh.insert_key false: the first-login keys stay the machine keys, vm up warns each boot, and true later replaces them', async () => {
    const guest = fakeGuest()
    const first = events()
    await upMachine(dir, config('ssh: {insert_key: false}\n'), first, {driver: 'fake'}, guest)
    expect(otherCommands(guest)).toEqual([])
    expect(first.warn).toHaveBeenCalledWith(expect.stringMatching(/insert_key is false: .*vagrant_insecure_key_rsa.*can log in/))
    const kept = record().ssh?.loginKeys
    expect(kept?.map((file) => path.basename(file))).toEqual([
      'vmfile_insecure_key',
      'vagrant_insecure_key_ed25519',
      'vagrant_insecure_key_rsa',
    ])
    // The copies the machine logs in with stay (mode 0600), and vm ssh uses them.
    for (const file of kept ?? []) expect(existsSync(file)).toBe(true)
    const {runningTarget} = await import('../../src/machine/ssh.js')
    expect((await runningTarget(dir, 'default')).identityFiles).toEqual(kept)
    expect(record()).toMatchObject({pending: [], ssh: {keyReplaced: true}})
    await haltMachine(dir, 'default', 1000)
    const again = fakeGuest()
    const second = events()
    await upMachine(dir, config('ssh: {insert_key: false}\n'), second, {}, again)
    expect(again.waits[0]).toMatchObject({identityFiles: kept, strictHostKeyChecking: 'yes'})
    expect(again.commands).toEqual([])
    expect(second.warn).toHaveBeenCalledWith(expect.stringContaining('insert_key is false'))
    // insert_key back to true (applied as vm reload does): the kept keys log in once more and the machine's own key replaces them.
    await haltMachine(dir, 'default', 1000)
    const third = fakeGuest()
    await upMachine(dir, config(), events(), {applyConfig: true}, third)
    expect(third.waits[0]!.identityFiles).toEqual(kept)
    expect(otherCommands(third)).toHaveLength(1)
    expect(record().ssh?.loginKeys).toBeUndefined()
    for (const file of kept ?? []) expect(existsSync(file)).toBe(false)
    expect((await runningTarget(dir, 'default')).identityFiles).toEqual([machinePaths(dir, 'default').privateKey])
  })

  it("the box's virtual_size is honoured: the first disk is the larger of it and the Vmfile's disk", async () => {
    const metadata = path.join(process.env.VM_HOME!, 'data', 'boxes', 'org-VAGRANTSLASH-box', '1.0.0', 'amd64', 'libvirt', 'metadata.json')
    writeFileSync(metadata, JSON.stringify({provider: 'libvirt', format: 'qcow2', virtual_size: 3}))
    await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest())
    await upMachine(path.join(dir, 'big'), config2(path.join(dir, 'big'), 'disk: 5G\n'), events(), {driver: 'fake'}, fakeGuest())
    await upMachine(path.join(dir, 'small'), config2(path.join(dir, 'small'), 'disk: 1G\n'), events(), {driver: 'fake'}, fakeGuest())
    expect(driver.diskSizes).toEqual([3072, 5120, 3072])
    expect(record().box.virtualSize).toBe(3)
  })

  it('a driver that fails to start: the error as it was, a machine recorded as powered off', async () => {
    driver.failStart = new UserError('the fake engine is out of fake memory', {code: 'FAKE_FAILED'})
    const error = await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest()).catch((caught: unknown) => caught)
    expect(error).toBe(driver.failStart)
    expect(record()).toMatchObject({lastState: 'poweroff', driver: 'fake'})
    expect((await inspectMachine(dir, 'default')).status.state).toBe('poweroff')
    // It boots once the engine works again.
    driver.failStart = undefined
    expect(await upMachine(dir, config(), events(), {}, fakeGuest())).toMatchObject({created: false})
  })

  it('machine.json lost while the disk remains: vm up refuses and keeps the disk; vm destroy then starts over', async () => {
    await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest())
    const paths = machinePaths(dir, 'default')
    const disk = path.join(paths.dir, 'fake0.img')
    writeFileSync(disk, 'disk with snapshots')
    driver.running = false
    rmSync(paths.record)
    const calls = driver.calls.length
    const error = await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest()).catch((caught: unknown) => caught)
    expect((error as VmError).code).toBe('MACHINE_RECORD_UNREADABLE')
    expect((error as VmError).message).toContain(`${paths.record} is missing`)
    expect((error as VmError).hint).toContain('vm destroy -f default')
    // Nothing was made over it or removed: the disk is as it was, the engine was not asked for new disks.
    expect(readFileSync(disk, 'utf8')).toBe('disk with snapshots')
    expect(driver.calls.slice(calls)).toEqual([])
    expect(existsSync(paths.record)).toBe(false)
    const {status} = await inspectMachine(dir, 'default')
    expect(status.state).toBe('unknown')
    expect(status.problem).toContain('is missing')
    // The way out the hint names works.
    expect(await destroyMachine(dir, 'default')).toMatchObject({destroyed: true})
    expect(existsSync(paths.dir)).toBe(false)
  })

  it('a suspended machine continues in one login: the one that finds SSH ready sets the clock; nothing else runs', async () => {
    await upMachine(dir, config(), events(), {driver: 'fake'}, fakeGuest())
    // The fake engine suspends: stopped, its state kept.
    let saved = false
    const inspect = driver.inspect.bind(driver)
    Object.assign(driver, {
      features: {...driver.features, suspend: true},
      suspension: {
        suspend: async (machine: CreatedMachine) => ((saved = true), driver.stop(machine, 0)),
        discard: async () => void (saved = false),
      },
      inspect: async (machine: DriverMachine) => ({...(await inspect(machine)), saved}),
    })
    const {suspendMachine, resumeMachine} = await import('../../src/machine/suspend.js')
    expect(await suspendMachine(dir, 'default')).toMatchObject({state: 'saved'})
    const guest = fakeGuest()
    const inLogin: boolean[] = []
    let logging = false
    guest.waitForSsh = async (options) => {
      guest.waits.push(options.target)
      logging = true
      await options.login?.(options.target, undefined)
      logging = false
      return 99
    }
    const runInGuest = guest.runInGuest
    const prompts: Array<string | undefined> = []
    guest.runInGuest = async (target, command, options) => (
      inLogin.push(logging),
      prompts.push(options?.answer?.prompt),
      runInGuest(target, command, options)
    )
    const result = await resumeMachine(dir, config(), events(), guest)
    expect(result).toMatchObject({was: 'saved', up: {state: 'running'}})
    expect(guest.waits).toHaveLength(1)
    // One guest command, run as the SSH wait's login: the clock from the host's time, answered when the guest asks; no folders, so no mounts.
    expect(inLogin).toEqual([true])
    expect(guest.commands[0]!.command).toContain(clockCommand())
    expect(prompts).toEqual([CLOCK_PROMPT])
    expect(guest.commands[0]!.command).not.toContain('mount')
    expect(record()).toMatchObject({lastState: 'running', pending: []})
  })

  it('what the engine cannot do is refused before anything is made', async () => {
    driver.validate = () => [{line: 3, col: 1, path: 'cpus', message: 'the fake engine has one CPU'}]
    const error = await upMachine(dir, config('cpus: 2\n'), events(), {driver: 'fake'}, fakeGuest()).catch((caught: unknown) => caught)
    expect((error as VmError).code).toBe('VMFILE_INVALID')
    expect((error as VmError).details.join('\n')).toContain('cpus: the fake engine has one CPU')
    expect(driver.calls).toEqual([])
    expect(existsSync(machinePaths(dir, 'default').dir)).toBe(false)
  })

  it('an engine without 9p: auto folders are copied with rsync, a 9p folder is refused before boot', async () => {
    const folders = config('synced_folders: [{host: ".", guest: /a}, {host: ".", guest: /b, type: 9p}]\n').syncedFolders
    expect(folders.map((folder) => folder.type)).toEqual(['auto', '9p'])
    const error = await upMachine(dir, {...config(), syncedFolders: folders}, events(), {driver: 'fake'}, fakeGuest()).catch(
      (caught: unknown) => caught,
    )
    expect((error as VmError).code).toBe('FOLDER_UNSUPPORTED')
    expect(driver.calls).toEqual([])
    const {foldersFor} = await import('../../src/machine/up-converge.js')
    expect(foldersFor(driver, folders.slice(0, 1)).map((folder) => folder.type)).toEqual(['rsync'])
  })

  it('SSH never answers: BOOT_TIMEOUT with the engine evidence, and the machine is stopped, not left trusting the insecure key', async () => {
    // A port nothing listens on: real waitForSsh polls it until boot_timeout.
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    driver.sshPort = (server.address() as net.AddressInfo).port
    await new Promise((resolve) => server.close(resolve))
    const original = driver.start.bind(driver)
    driver.start = async (machine, host, options) => ({
      ...(await original(machine, host, options)),
      ssh: {host: '127.0.0.1', port: driver.sshPort},
    })
    const error = await upMachine(dir, config('boot_timeout: 2\n'), events(), {driver: 'fake'}, openSsh).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(VmError)
    expect((error as VmError).code).toBe('BOOT_TIMEOUT')
    expect((error as VmError).details).toEqual(['console: fake console'])
    expect(driver.calls.at(-1)).toBe('stop 0')
    expect(driver.running).toBe(false)
    expect(record()).toMatchObject({lastState: 'poweroff'})
    expect(record().pending).toBeUndefined()
    expect(existsSync(path.join(machinePaths(dir, 'default').dir, 'vmfile_insecure_key'))).toBe(false)
  }, 30_000)
})

describe('vm up of a cloud-image box against a fake driver', () => {
  const DONE = 'status: done\nextended_status: done\ndetail: DataSourceNoCloud [seed=/dev/vdb]\nerrors: []\n'
  const FAILED = "status: error\nextended_status: error - done\nerrors:\n\t- ('scripts_user', RuntimeError('Runparts: 1 failures'))\n"

  /** The store's org/box 1.0.0 made a cloud image, as vm box add stores a bare disk image. */
  function makeCloudBox(): void {
    const box = path.join(process.env.VM_HOME!, 'data', 'boxes', 'org-VAGRANTSLASH-box', '1.0.0', 'amd64', 'libvirt')
    writeFileSync(path.join(box, 'metadata.json'), JSON.stringify({provider: 'libvirt', format: 'qcow2', cloud_init: true}))
  }

  /** A guest whose cloud-init reports `status` (with exit code `code`) and whose log has one line. */
  function cloudGuest(status: string, code: number): FakeGuest {
    const guest = fakeGuest()
    guest.runInGuest = async (target, command) => {
      guest.commands.push({target, command})
      if (command.startsWith('cloud-init status')) return {code, stdout: status, stderr: ''}
      if (command.includes('cloud-init-output.log')) return {code: 0, stdout: 'runcmd: false: exit 1\n', stderr: ''}
      return {code: 0, stdout: '', stderr: ''}
    }
    return guest
  }

  it('the seed is written at creation with the machine key; SSH uses that key from the first boot; cloud-init is awaited on every boot', async () => {
    makeCloudBox()
    const guest = cloudGuest(DONE, 0)
    const cfg = config('hostname: web.example\ncloud_init: {user_data: "#cloud-config\\nruncmd: [touch /x]\\n"}\n')
    await upMachine(dir, cfg, events(), {driver: 'fake'}, guest)
    const paths = machinePaths(dir, 'default')
    const seedFile = path.join(paths.dir, 'cidata.iso')
    const seed = readFileSync(seedFile, 'latin1')
    const publicKey = readFileSync(`${paths.privateKey}.pub`, 'utf8').trim()
    const {instanceIdFor} = await import('../../src/cloud-init/seed.js')
    expect(seed).toContain('CIDATA'.toLowerCase())
    expect(seed).toContain(publicKey)
    expect(seed).toContain(instanceIdFor(record()))
    expect(seed).toContain('"local-hostname": "web.example"')
    expect(seed).toContain('runcmd: [touch /x]')
    expect(record()).toMatchObject({cloudInit: {seed: 'cidata.iso'}, pending: [], ssh: {keyReplaced: true, user: 'vm'}})
    // No insecure key at any point: the first login uses the machine's own key, accepting the new host key.
    expect(guest.waits).toHaveLength(1)
    expect(guest.waits[0]).toMatchObject({identityFiles: [paths.privateKey], strictHostKeyChecking: 'accept-new', user: 'vm'})
    expect(guest.commands.map((call) => call.command)).toEqual(['cloud-init status --wait --long'])
    expect(guest.commands[0]!.target.identityFiles).toEqual([paths.privateKey])
    expect(existsSync(path.join(paths.dir, 'vmfile_insecure_key'))).toBe(false)

    // Halt and up: the same seed (same instance-id: no once-only module runs again), the host key pinned, cloud-init awaited again.
    const before = readFileSync(seedFile)
    await haltMachine(dir, 'default', 1000)
    writeFileSync(paths.knownHosts, '[192.0.2.7]:2222 ssh-ed25519 AAAA\n')
    const again = cloudGuest(DONE, 0)
    await upMachine(dir, cfg, events(), {}, again)
    expect(readFileSync(seedFile).equals(before)).toBe(true)
    expect(again.waits[0]).toMatchObject({identityFiles: [paths.privateKey], strictHostKeyChecking: 'yes'})
    expect(again.commands.map((call) => call.command)).toEqual(['cloud-init status --wait --long'])
  })

  it('a cloud-init failure is reported with its log, the machine keeps running, and the next vm up checks again', async () => {
    makeCloudBox()
    const error = await upMachine(dir, config(), events(), {driver: 'fake'}, cloudGuest(FAILED, 1)).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(UserError)
    expect((error as VmError).code).toBe('CLOUD_INIT_FAILED')
    expect((error as VmError).message).toContain('scripts_user')
    expect((error as VmError).details).toContain('runcmd: false: exit 1')
    expect(driver.running).toBe(true)
    expect(record().pending).toEqual(['cloud-init', 'networks', 'folders', 'provision'])
    const guest = cloudGuest(DONE, 0)
    expect(await upMachine(dir, config(), events(), {}, guest)).toMatchObject({alreadyRunning: false, created: false})
    expect(guest.waits).toEqual([])
    expect(guest.commands.map((call) => call.command)).toEqual(['cloud-init status --wait --long'])
    expect(record().pending).toEqual([])
  })

  it('cloud_init on a box that is not a cloud image: a warning, no seed, the insecure key replaced as usual', async () => {
    const log = events()
    await upMachine(dir, config('cloud_init: {user_data: "#cloud-config\\n"}\n'), log, {driver: 'fake'}, fakeGuest())
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('cloud_init is ignored'))
    expect(existsSync(path.join(machinePaths(dir, 'default').dir, 'cidata.iso'))).toBe(false)
    expect(record().cloudInit).toBeUndefined()
  })
})
