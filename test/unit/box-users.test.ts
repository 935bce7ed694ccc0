import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {pruneBoxes} from '../../src/box/prune.js'
import {readBoxReferences, recordBoxUse, referencesDir} from '../../src/box/references.js'
import {removeBox} from '../../src/box/remove.js'
import type {VmError} from '../../src/errors/errors.js'
import {listBoxes, type StoredBox} from '../../src/box/store.js'
import {machinesUsing} from '../../src/box/usage.js'
import {destroyMachine} from '../../src/machine/halt.js'
import {addToIndex} from '../../src/state/global-index.js'
import {machineId, machinePaths} from '../../src/state/machine-files.js'
import {qemuPaths} from '../../src/driver/qemu/files.js'
import {createMachine, key, project, storeWith, stored} from '../helpers/box-users.js'

afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
})

describe('the box store knows which machines use a box', () => {
  it('remove refuses while a machine exists, naming it, even with no global index at all', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'web-project')
    const id = await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    expect(readdirSync(referencesDir(key('1.0.0'), root))).toEqual([`${id}.json`])
    expect(existsSync(path.join(home, 'data/machines.json'))).toBe(false)
    const refused = removeBox({name: 'org/box', env})
    await expect(refused).rejects.toThrow(/is used by a machine/)
    await expect(refused).rejects.toMatchObject({code: 'BOX_IN_USE', details: [`machine "web" in ${dir}`]})
    expect(await listBoxes(root)).toHaveLength(1)
  })

  it('destroy forgets the machine, and then the box can go', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    const destroyed = await destroyMachine(dir, 'web')
    expect(destroyed.destroyed).toBe(true)
    expect(await readBoxReferences(key('1.0.0'), root)).toEqual([])
    expect((await removeBox({name: 'org/box', env})).removed).toEqual([key('1.0.0')])
    expect(existsSync(path.join(root, '.users'))).toBe(false)
  })

  it('a moved project keeps the box in use, says so, and --force overrides', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'old-place')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    renameSync(dir, path.join(home, 'new-place'))
    const refused = removeBox({name: 'org/box', env})
    await expect(refused).rejects.toMatchObject({code: 'BOX_IN_USE'})
    const error = (await refused.catch((caught: unknown) => caught)) as VmError
    expect(error.details).toEqual([
      `machine "web" recorded in ${dir}: the project directory is gone (moved, or deleted without "vm destroy"?)`,
    ])
    expect(error.hint).toContain('--force')
    expect((await pruneBoxes({env})).removed).toEqual([])
    const forced = await removeBox({name: 'org/box', env, force: true})
    expect(forced.removed).toEqual([key('1.0.0')])
    expect(forced.orphaned.map((user) => user.machine)).toEqual(['web'])
  })

  it('a reference whose project is there without the machine is stale, and is tidied away', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    rmSync(path.join(dir, '.vm'), {recursive: true}) // deleted by hand, not with vm destroy
    expect(await machinesUsing(key('1.0.0'), env)).toEqual([])
    expect((await removeBox({name: 'org/box', env})).removed).toEqual([key('1.0.0')])
    expect(existsSync(path.join(root, '.users'))).toBe(false)
  })

  it('a machine re-created from another version no longer holds the old one', async () => {
    const {home, root, env} = storeWith([key('1.0.0'), key('2.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    rmSync(path.join(dir, '.vm'), {recursive: true})
    await createMachine(dir, 'web', await stored(key('2.0.0'), root), root)
    const pruned = await pruneBoxes({env})
    expect(pruned.removed).toEqual([key('1.0.0')])
    await expect(removeBox({name: 'org/box', version: '2.0.0', env})).rejects.toMatchObject({code: 'BOX_IN_USE'})
  })

  it('a machine with a record but without its project directory intact still counts: its overlay is there', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    rmSync(machinePaths(dir, 'web').record)
    const users = await machinesUsing(key('1.0.0'), env)
    expect(users.map((user) => user.unsure)).toEqual([
      `its disk ${qemuPaths(machinePaths(dir, 'web').dir, undefined).overlay(0)} is still there, without a machine record`,
    ])
  })

  it('an unreadable machine record or reference counts as a user', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    writeFileSync(machinePaths(dir, 'web').record, '{"box": ')
    writeFileSync(path.join(referencesDir(key('1.0.0'), root), '0123456789abcdef.json'), 'garbage')
    const users = await machinesUsing(key('1.0.0'), env)
    expect(users).toHaveLength(2)
    expect(users.every((user) => user.unsure !== undefined)).toBe(true)
    await expect(removeBox({name: 'org/box', env})).rejects.toMatchObject({code: 'BOX_IN_USE'})
  })

  it('prune keeps an old version a machine uses and names the machine', async () => {
    const {home, root, env} = storeWith([key('1.0.0'), key('1.1.0'), key('2.0.0')])
    const dir = project(home, 'p')
    await createMachine(dir, 'db', await stored(key('1.0.0'), root), root)
    const dry = await pruneBoxes({env, dryRun: true})
    expect(dry.removed.map((box) => box.version)).toEqual(['1.1.0'])
    expect(dry.kept.find((box) => box.version === '1.0.0')).toMatchObject({reason: 'in use', users: [`machine "db" in ${dir}`]})
    await pruneBoxes({env})
    expect((await listBoxes(root)).map((box) => box.version)).toEqual(['2.0.0', '1.0.0'])
  })

  it('machines made before references exist are found through the index, and get a reference', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const dir = project(home, 'legacy')
    const id = await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    rmSync(path.join(root, '.users'), {recursive: true}) // as a machine created before references
    await addToIndex({id, name: 'web', projectDir: dir}, env)
    await expect(removeBox({name: 'org/box', env})).rejects.toMatchObject({details: [`machine "web" in ${dir}`]})
    // The refusal wrote the missing reference: losing the index no longer loses the machine.
    rmSync(path.join(home, 'data/machines.json'))
    await expect(removeBox({name: 'org/box', env})).rejects.toMatchObject({details: [`machine "web" in ${dir}`]})
  })

  it('a machine cannot be created on a box removed meanwhile, and a failed creation leaves no reference', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const box = await stored(key('1.0.0'), root)
    const dir = project(home, 'p')
    const failing = recordBoxUse(box, {id: machineId(dir, 'web'), name: 'web', projectDir: dir, overlays: []}, async () => {
      throw new Error('qemu-img failed')
    })
    await expect(failing).rejects.toThrow('qemu-img failed')
    expect(await readBoxReferences(key('1.0.0'), root)).toEqual([])
    await removeBox({name: 'org/box', env})
    const late = recordBoxUse(box, {id: machineId(dir, 'web'), name: 'web', projectDir: dir, overlays: []}, async () => {})
    await expect(late).rejects.toMatchObject({code: 'BOX_NOT_FOUND'})
  })

  it('remove waits for a machine being created on the box, then sees it', async () => {
    const {home, root, env} = storeWith([key('1.0.0')])
    const box = await stored(key('1.0.0'), root)
    const dir = project(home, 'p')
    let creating: () => void = () => {}
    const started = new Promise<void>((resolve) => (creating = resolve))
    let finish: () => void = () => {}
    const creation = createMachineSlowly(dir, box, root, creating, new Promise<void>((resolve) => (finish = resolve)))
    await started
    const removal = removeBox({name: 'org/box', env}).catch((error: unknown) => error)
    await new Promise((resolve) => setTimeout(resolve, 300))
    finish()
    await creation
    expect(await removal).toMatchObject({code: 'BOX_IN_USE', details: [`machine "web" in ${dir}`]})
  })
})

/** createMachine, pausing after the reference is written and before the overlay exists. */
async function createMachineSlowly(dir: string, box: StoredBox, root: string, started: () => void, proceed: Promise<void>): Promise<void> {
  const paths = machinePaths(dir, 'web')
  mkdirSync(paths.dir, {recursive: true})
  await recordBoxUse(
    box,
    {id: machineId(dir, 'web'), name: 'web', projectDir: dir, overlays: [qemuPaths(paths.dir, undefined).overlay(0)]},
    async () => {
      started()
      await proceed
      execFileSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-F',
        'qcow2',
        '-b',
        box.disks[0]!.path,
        qemuPaths(paths.dir, undefined).overlay(0),
      ])
    },
    root,
  )
  writeFileSync(paths.record, JSON.stringify({id: machineId(dir, 'web'), name: 'web', projectDir: dir, box: {...key('1.0.0'), disks: []}}))
}

describe('copies of a box on libvirt hosts', () => {
  it('box remove names each libvirt host, pool and volume that still holds the removed box, and only those', async () => {
    const {root, env} = storeWith([key('1.0.0'), key('2.0.0')])
    const {recordHolding} = await import('../../src/driver/libvirt/holdings.js')
    const held = (version: string, uri: string, volume: string) =>
      recordHolding({uri, pool: 'default', volume, box: key(version), role: 'disk'}, env)
    await held('1.0.0', 'qemu+ssh://ops@build-3/system', 'vmbox-aa.qcow2')
    await held('1.0.0', 'qemu:///system', 'vmbox-aa.qcow2')
    await held('1.0.0', 'qemu:///system', 'vmbox-aa.qcow2')
    await held('2.0.0', 'qemu+ssh://ops@build-4/system', 'vmbox-bb.qcow2')
    const result = await removeBox({name: 'org/box', version: '1.0.0', env})
    expect(result.removed).toEqual([key('1.0.0')])
    expect(result.heldOnHosts).toEqual([
      {box: key('1.0.0'), uri: 'qemu+ssh://ops@build-3/system', pool: 'default', volume: 'vmbox-aa.qcow2'},
      {box: key('1.0.0'), uri: 'qemu:///system', pool: 'default', volume: 'vmbox-aa.qcow2'},
    ])
    expect(await listBoxes(root)).toHaveLength(1)
  })
})
