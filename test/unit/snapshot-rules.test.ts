import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import type {MachineDriver} from '../../src/driver/driver.js'
import {incomingFrom, parseSnapshots, saveCommand} from '../../src/driver/qemu/snapshot.js'
import {registerDriver} from '../../src/driver/registry.js'
import {runProgram} from '../../src/process/run.js'
import {UsageError, UserError} from '../../src/errors/errors.js'
import {haltMachine} from '../../src/machine/halt.js'
import {writeRecord, type MachineRecord, type SnapshotRecord} from '../../src/machine/record.js'
import {checkSnapshotName, machineAndSnapshot, newestPushed, pushName, restoreProblem} from '../../src/machine/snapshot-rules.js'
import {listSnapshots, saveSnapshot} from '../../src/machine/snapshot.js'
import {suspendMachine} from '../../src/machine/suspend.js'
import {machinePaths} from '../../src/state/machine-files.js'
import {deriveState} from '../../src/state/machine-state.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'

describe('snapshot arguments', () => {
  it('one argument is the snapshot (of the primary machine), two are machine then snapshot', () => {
    expect(machineAndSnapshot(['before', undefined], 'save')).toEqual({machine: undefined, snapshot: 'before'})
    expect(machineAndSnapshot(['web', 'before'], 'save')).toEqual({machine: 'web', snapshot: 'before'})
    expect(() => machineAndSnapshot([undefined, undefined], 'restore')).toThrow(/needs the snapshot's name/)
    expect(() => machineAndSnapshot([undefined, undefined], 'restore')).toThrow(UsageError)
  })

  it('names: letters, digits, . _ -; never all digits (QEMU would take them as snapshot ids), never options or spaces', () => {
    for (const good of ['before-upgrade', 'a', 'v1.2_rc', '1st']) expect(() => checkSnapshotName(good)).not.toThrow()
    for (const bad of ['', '12', '-rf', 'a b', 'x;y', '.hidden', 'a'.repeat(65), 'a/b']) {
      expect(() => checkSnapshotName(bad), bad).toThrow(UsageError)
    }
  })
})

describe('push and pop', () => {
  it('push names come from the time (UTC) and never repeat one the machine has', () => {
    const now = new Date('2026-03-04T05:06:07.890Z')
    expect(pushName(now, new Set())).toBe('push-20260304-050607')
    expect(pushName(now, new Set(['push-20260304-050607']))).toBe('push-20260304-050607-2')
    expect(pushName(now, new Set(['push-20260304-050607', 'push-20260304-050607-2']))).toBe('push-20260304-050607-3')
  })

  it('pop takes the newest pushed snapshot the engine still holds, never a named one', () => {
    const at = (name: string, createdAt: string, pushed?: boolean): SnapshotRecord => ({
      name,
      createdAt,
      memory: true,
      box: {name: 'b', version: '1'},
      diskSizes: [1],
      pushed,
    })
    const records = [at('p1', '2026-01-01T00:00:00Z', true), at('named', '2026-01-03T00:00:00Z'), at('p2', '2026-01-02T00:00:00Z', true)]
    expect(newestPushed(records, new Set(['p1', 'p2', 'named']))?.name).toBe('p2')
    expect(newestPushed(records, new Set(['p1', 'named']))?.name).toBe('p1')
    expect(newestPushed(records, new Set(['named']))).toBeUndefined()
  })
})

describe('restore checks', () => {
  const taken: SnapshotRecord = {
    name: 's',
    createdAt: '2026-01-01T00:00:00Z',
    memory: true,
    box: {name: 'vmfile/tiny', version: '1.0.0'},
    diskSizes: [2 * 1024 ** 3],
  }
  it('the same box version and disk sizes: no problem', () => {
    expect(restoreProblem('s', taken, {box: {name: 'vmfile/tiny', version: '1.0.0'}, diskSizes: [2 * 1024 ** 3]})).toBeUndefined()
  })
  it('another box version, another disk size, or a snapshot vm did not take: refused with the reason', () => {
    expect(restoreProblem('s', taken, {box: {name: 'vmfile/tiny', version: '1.1.0'}, diskSizes: [2 * 1024 ** 3]})).toBe(
      'snapshot s was taken on box vmfile/tiny 1.0.0; the machine now runs vmfile/tiny 1.1.0',
    )
    expect(restoreProblem('s', taken, {box: {name: 'vmfile/tiny', version: '1.0.0'}, diskSizes: [3 * 1024 ** 3]})).toBe(
      "snapshot s was taken with disk size 2 GiB; the machine's disk is now 3 GiB",
    )
    expect(restoreProblem('s', undefined, {box: taken.box, diskSizes: taken.diskSizes})).toMatch(/was not taken by vm/)
  })
})

describe('machine state', () => {
  const gone = {created: true, alive: false, cleanPowerOff: false}
  it('saved while its saved state exists; aborted when the state file is lost; running whenever the engine runs', () => {
    expect(deriveState({...gone, lastRecorded: 'saved', saved: true})).toBe('saved')
    expect(deriveState({...gone, lastRecorded: 'saved', saved: false})).toBe('aborted')
    expect(deriveState({...gone, alive: true, lastRecorded: 'saved', saved: true})).toBe('running')
  })
})

describe('QEMU snapshot plumbing', () => {
  it('reads snapshots from qemu-img info --output=json (memory size 0: a disk snapshot)', () => {
    // qemu-img info -U --output=json disk0.qcow2 (QEMU 7.2), after a live and a halted snapshot.
    const info = {
      'virtual-size': 2147483648,
      snapshots: [
        {
          icount: 0,
          'vm-clock-nsec': 16_000_000_000,
          name: 's1',
          'date-sec': 1796079042,
          'date-nsec': 120000000,
          'vm-clock-sec': 16,
          id: '1',
          'vm-state-size': 83050496,
        },
        {'vm-clock-nsec': 0, name: 'cold', 'date-sec': 1796079100, 'date-nsec': 0, 'vm-clock-sec': 0, id: '2', 'vm-state-size': 0},
      ],
    }
    expect(parseSnapshots(info)).toEqual([
      {name: 's1', memoryBytes: 83050496, createdAt: '2026-11-30T22:50:42.120Z'},
      {name: 'cold', memoryBytes: 0, createdAt: '2026-11-30T22:51:40.000Z'},
    ])
  })

  it("the saved state is QEMU's stream as sent (no decompression on resume), written detached from the shell QEMU kills, private, and appears only once whole", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "vm-snap-it's here-"))
    const file = path.join(dir, 'saved-state')
    const stream = `QEVM${'\0'.repeat(4)}${'device state\n'.repeat(1000)}`
    // QEMU runs the exec: URI with /bin/sh -c and writes the stream to its stdin.
    const shell = spawnSync('/bin/sh', ['-c', saveCommand(file)], {input: stream})
    expect(shell.status).toBe(0)
    for (let waited = 0; !existsSync(file) && waited < 100; waited++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(existsSync(`${file}.partial`)).toBe(false)
    expect(readFileSync(file, 'latin1')).toBe(stream)
    // Read back by QEMU itself from the file, opened by vm and passed as its descriptor 3.
    expect(await incomingFrom(file)).toEqual({incoming: 'fd:3', incomingFile: file})
    const handle = await open(file, 'r')
    try {
      const back = await runProgram('/bin/sh', ['-c', 'cat <&3'], {passFds: [handle.fd]})
      expect(back.stdout).toBe(stream)
    } finally {
      await handle.close()
    }
  })

  it('a state saved compressed by an earlier version (gzip, zstd) is still read back', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-snap-old-state-'))
    const file = path.join(dir, 'saved-state')
    const stream = `QEVM${'old device state\n'.repeat(500)}`
    const compressors = [['gzip', '-1', '-c'], ...(spawnSync('zstd', ['--version']).status === 0 ? [['zstd', '-q', '-1', '-c']] : [])]
    for (const [program, ...args] of compressors) {
      writeFileSync(file, spawnSync(program!, args, {input: stream}).stdout)
      const uri = (await incomingFrom(file)).incoming
      expect(uri).toMatch(program === 'gzip' ? /^exec:exec gzip -dc '/ : /^exec:exec zstd -q -dc '/)
      expect(spawnSync('/bin/sh', ['-c', uri.slice('exec:'.length)], {encoding: 'latin1'}).stdout).toBe(stream)
    }
  })
})

describe('an engine without snapshots or suspend', () => {
  let unregister: (() => void) | undefined
  afterEach(() => unregister?.())

  function projectWithMachine(state: MachineRecord['lastState']): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-snap-unit-'))
    const text = 'box: org/box\nsynced_folders: false\n'
    writeFileSync(path.join(dir, 'Vmfile'), text)
    const config = resolveVmfileText(text, path.join(dir, 'Vmfile')).machines[0]!
    const paths = machinePaths(dir, 'default')
    mkdirSync(paths.dir, {recursive: true})
    const record: MachineRecord = {
      format: 1,
      id: '0123456789abcdef',
      name: 'default',
      projectDir: dir,
      driver: 'plain',
      createdAt: '2026-01-01T00:00:00Z',
      box: {name: 'org/box', version: '1.0.0', architecture: 'amd64', provider: 'libvirt', disks: []},
      config,
      macs: ['52:54:00:00:00:01'],
      lastState: state,
      updatedAt: '2026-01-01T00:00:00Z',
    }
    void writeRecord(paths.record, record)
    return dir
  }

  const plain = (alive: boolean, saved = false): MachineDriver =>
    ({
      name: 'plain',
      displayName: 'plain engine',
      features: {shares: ['rsync'], networks: [], ssh: 'guest-address', snapshots: false, suspend: false},
      natAddress: undefined,
      inspect: async () => ({alive, cleanPowerOff: false, saved}),
    }) as unknown as MachineDriver

  it('vm snapshot save and list are refused, saying the engine lacks snapshots', async () => {
    unregister = registerDriver(plain(true))
    const dir = projectWithMachine('running')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const refused = saveSnapshot(dir, 'default', 'before')
    await expect(refused).rejects.toThrow('The plain engine engine of machine default does not support snapshots')
    await expect(listSnapshots(dir, 'default')).rejects.toMatchObject({code: 'UNSUPPORTED'})
  })

  it('vm suspend is refused, saying the engine lacks suspend', async () => {
    unregister = registerDriver(plain(true))
    const dir = projectWithMachine('running')
    await new Promise((resolve) => setTimeout(resolve, 50))
    await expect(suspendMachine(dir, 'default')).rejects.toThrow(UserError)
    await expect(suspendMachine(dir, 'default')).rejects.toThrow(/does not support suspend and resume/)
  })

  it('vm halt of a saved machine refuses unless its saved state may be discarded', async () => {
    unregister = registerDriver(plain(false, true))
    const dir = projectWithMachine('saved')
    await new Promise((resolve) => setTimeout(resolve, 50))
    await expect(haltMachine(dir, 'default', 0)).rejects.toMatchObject({code: 'MACHINE_SAVED'})
    await expect(haltMachine(dir, 'default', 0, undefined, {discardSaved: true})).resolves.toMatchObject({
      method: 'discarded-saved-state',
      was: 'saved',
    })
  })
})
