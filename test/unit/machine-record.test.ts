import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {inspectMachine} from '../../src/machine/inspect.js'
import {projectMoved, relocatedRecord} from '../../src/machine/moved.js'
import {readRecord, RecordUnreadableError, type MachineRecord} from '../../src/machine/record.js'
import {finishStage, firstBootUnfinished, stagesForBoot, unfinishedStages} from '../../src/machine/stages.js'

describe('boot stages', () => {
  it('a first boot has every stage, the key stage included; later boots have no key stage', () => {
    expect(stagesForBoot({ssh: {keyReplaced: false}})).toEqual(['ssh', 'key', 'networks', 'folders', 'provision'])
    expect(stagesForBoot({ssh: {keyReplaced: true}})).toEqual(['ssh', 'networks', 'folders', 'provision'])
  })
  it('a machine of a cloud-image box waits for cloud-init on every boot and never has a key stage', () => {
    const cloud = {cloudInit: {seed: 'cidata.iso'}}
    expect(stagesForBoot({...cloud, ssh: {keyReplaced: true}})).toEqual(['ssh', 'cloud-init', 'networks', 'folders', 'provision'])
    // A failed cloud-init stage stays unfinished: the next vm up checks again.
    expect(unfinishedStages({...cloud, ssh: {keyReplaced: true}, pending: ['cloud-init', 'folders']})).toEqual(['cloud-init', 'folders'])
    expect(firstBootUnfinished({...cloud, ssh: {keyReplaced: true}, pending: ['cloud-init']})).toBe(false)
    // Other machines never wait for cloud-init, whatever an edited record says.
    expect(unfinishedStages({ssh: {keyReplaced: true}, pending: ['cloud-init', 'folders']})).toEqual(['folders'])
  })
  it('a running machine whose key was never replaced is unfinished, whatever pending says', () => {
    expect(unfinishedStages({ssh: {keyReplaced: false}, pending: []})).toEqual(['ssh', 'key'])
    expect(unfinishedStages({ssh: {keyReplaced: false}, pending: ['folders']})).toEqual(['ssh', 'key', 'folders'])
    expect(unfinishedStages({pending: undefined})).toEqual(['ssh', 'key', 'networks', 'folders', 'provision'])
    expect(firstBootUnfinished({ssh: {keyReplaced: false}, pending: []})).toBe(true)
  })
  it('stages left after the key are still unfinished, in order', () => {
    let pending = stagesForBoot({ssh: {keyReplaced: false}})
    for (const stage of ['ssh', 'key', 'networks'] as const) pending = finishStage(pending, stage)
    expect(unfinishedStages({ssh: {keyReplaced: true}, pending})).toEqual(['folders', 'provision'])
    expect(firstBootUnfinished({ssh: {keyReplaced: true}, pending})).toBe(false)
  })
  it('a finished boot, and an older record without stages whose key was replaced, are done', () => {
    expect(unfinishedStages({ssh: {keyReplaced: true}, pending: []})).toEqual([])
    expect(unfinishedStages({ssh: {keyReplaced: true}})).toEqual([])
  })
})

function sampleRecord(projectDir: string): MachineRecord {
  return {
    format: 1,
    id: '0123456789abcdef',
    name: 'web',
    projectDir,
    createdAt: '2026-01-01T00:00:00.000Z',
    box: {name: 'vmfile/tiny', version: '1.0.0', architecture: 'amd64', provider: 'libvirt', disks: []},
    config: {
      syncedFolders: [
        {host: projectDir, guest: '/vagrant', type: '9p', readOnly: false, exclude: []},
        {host: path.join(projectDir, 'src'), guest: '/src', type: 'rsync', readOnly: false, exclude: []},
        {host: '/srv/data', guest: '/data', type: '9p', readOnly: true, exclude: []},
        {host: `${projectDir}-other`, guest: '/other', type: '9p', readOnly: true, exclude: []},
      ],
    } as unknown as MachineRecord['config'],
    macs: [],
    lastState: 'poweroff',
    updatedAt: '2026-01-01T00:00:00.000Z',
  }
}

describe('machine record', () => {
  const machineDir = (): string => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'vm-record-')), '.vm/machines/web')
    mkdirSync(dir, {recursive: true})
    return dir
  }
  it('a missing record is no machine', async () => {
    expect(await readRecord(path.join(machineDir(), 'machine.json'))).toBeUndefined()
  })
  it('a corrupt record is a user error naming the file and how to recover', async () => {
    const file = path.join(machineDir(), 'machine.json')
    writeFileSync(file, '{"id": "0123", garbage')
    const error = await readRecord(file).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(RecordUnreadableError)
    expect((error as RecordUnreadableError).message).toContain(file)
    expect((error as RecordUnreadableError).kind).toBe('user')
    expect((error as RecordUnreadableError).hint).toContain('vm destroy -f web')
  })
  it('valid JSON that is not a machine record is unreadable too', async () => {
    const file = path.join(machineDir(), 'machine.json')
    for (const text of ['null', '[]', '{"id": 5}', '{"id":"a","name":"web","projectDir":"/p","box":{},"config":{},"macs":[]}']) {
      writeFileSync(file, text)
      await expect(readRecord(file)).rejects.toBeInstanceOf(RecordUnreadableError)
    }
  })
  it('status of a machine with a corrupt record is unknown, with the reason', async () => {
    const dir = machineDir()
    writeFileSync(path.join(dir, 'machine.json'), '\u0000\u0001garbage')
    const project = path.resolve(dir, '../../..')
    const {status, unreadable} = await inspectMachine(project, 'web')
    expect(status.state).toBe('unknown')
    expect(status.problem).toContain(path.join(dir, 'machine.json'))
    expect(status.problem).toContain('QEMU is not running')
    expect(unreadable).toBeInstanceOf(RecordUnreadableError)
  })
})

describe('a moved project', () => {
  it('is noticed when the record names another directory', () => {
    expect(projectMoved(sampleRecord('/old/p'), '/old/p')).toBe(false)
    expect(projectMoved(sampleRecord('/old/p'), '/new/p')).toBe(true)
  })
  it('takes the synced folders inside the project along, and leaves the others', () => {
    const moved = relocatedRecord(sampleRecord('/old/p'), '/new/q')
    expect(moved.projectDir).toBe('/new/q')
    expect(moved.id).toBe('0123456789abcdef')
    expect(moved.config.syncedFolders.map((folder) => folder.host)).toEqual(['/new/q', '/new/q/src', '/srv/data', '/old/p-other'])
  })
})
