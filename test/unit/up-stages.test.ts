import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import type {CreatedMachine, DriverMachine, MachineDriver, StartOptions} from '../../src/driver/driver.js'
import {registerDriver} from '../../src/driver/registry.js'
import {UserError, VmError} from '../../src/errors/errors.js'
import {openSsh, type GuestAccess} from '../../src/machine/boot-context.js'
import {haltMachine} from '../../src/machine/halt.js'
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
    running: false,
    sshPort: 2222,
    async probeHost() {
      driver.calls.push('probeHost')
      return {accel: 'fake-accel'}
    },
    validate: () => [],
    diskFiles: (machine, count) => Array.from({length: count}, (_unused, index) => path.join(machine.dir, `fake${index}.img`)),
    async createDisks(machine: CreatedMachine) {
      driver.calls.push('createDisks')
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
  commands: Array<{target: SshTarget; command: string}>
}

/** A guest that answers at once and accepts whatever key it was last given. */
function fakeGuest(): FakeGuest {
  const guest: FakeGuest = {
    waits: [],
    commands: [],
    waitForSsh: async (options) => {
      guest.waits.push(options.target)
      return 1234
    },
    runInGuest: async (target, command) => {
      guest.commands.push({target, command})
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
    expect(result.ssh).toEqual({host: '192.0.2.7', port: 2222, user: 'vm'})
    expect(driver.calls).toEqual(['createDisks', 'probeHost', 'start'])
    expect(guest.waits[0]).toMatchObject({host: '192.0.2.7', port: 2222, strictHostKeyChecking: 'accept-new'})
    expect(guest.waits[0]!.identityFile).toMatch(/vmfile_insecure_key$/)
    // The key replacement logged in with the insecure key and installed the machine's own.
    const paths = machinePaths(dir, 'default')
    const publicKey = readFileSync(`${paths.privateKey}.pub`, 'utf8').trim()
    expect(guest.commands).toHaveLength(1)
    expect(guest.commands[0]!.command).toContain(publicKey)
    expect(existsSync(path.join(paths.dir, 'vmfile_insecure_key'))).toBe(false)
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
    expect(guest.waits[0]).toMatchObject({strictHostKeyChecking: 'yes', identityFile: machinePaths(dir, 'default').privateKey})
    expect(guest.commands).toEqual([])
    // A third vm up finds it running.
    expect(await upMachine(dir, config(), events(), {}, fakeGuest())).toMatchObject({alreadyRunning: true})
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
