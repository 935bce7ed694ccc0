import {mkdirSync, readdirSync, readFileSync, renameSync} from 'node:fs'
import path from 'node:path'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {withStoreLock} from '../../src/box/references.js'
import {destroyMachine} from '../../src/machine/halt.js'
import {makeBox, makeDisk, sha256} from '../helpers/box-fixtures.js'
import {createMachine, key, project, storeWith, stored} from '../helpers/box-users.js'

afterEach(() => {
  vi.unstubAllEnvs()
})

describe('vm box add --force and the machines on a box', () => {
  function boxFile(work: string, label: string, disk: Buffer): string {
    return makeBox(work, `${label}.box`, {
      metadata: {provider: 'libvirt', format: 'qcow2', name: 'org/box', version: '1.0.0', architecture: 'amd64'},
      files: {'box.img': disk},
    })
  }

  it('refuses to change the disk under a machine, naming it; allows identical content; replaces a box nobody uses', async () => {
    const {home, root, env} = storeWith([])
    const work = path.join(home, 'work')
    mkdirSync(work)
    const first = readFileSync(makeDisk(path.join(work, 'one.qcow2')))
    const second = readFileSync(makeDisk(path.join(work, 'two.qcow2'), {size: '32M'}))
    const original = boxFile(work, 'first', first)
    await addBox({source: original, env, cwd: work})
    const storedDisk = path.join(root, 'org-VAGRANTSLASH-box/1.0.0/amd64/libvirt/box.img')
    const before = sha256(storedDisk)
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)

    const replacing = addBox({source: boxFile(work, 'second', second), force: true, env, cwd: work})
    await expect(replacing).rejects.toMatchObject({code: 'BOX_IN_USE', details: [`machine "web" in ${dir}`]})
    await expect(replacing).rejects.toThrow(/replacing it would change box\.img/)
    expect(sha256(storedDisk)).toBe(before)
    expect(readdirSync(root).filter((name) => name.startsWith('.tmp-'))).toEqual([])

    // The same content again (say, to refresh where it came from) changes nothing for the machine.
    const again = await addBox({source: original, force: true, env, cwd: work})
    expect(again.alreadyPresent).toBe(false)
    expect(sha256(storedDisk)).toBe(before)

    await destroyMachine(dir, 'web')
    await addBox({source: boxFile(work, 'third', second), force: true, env, cwd: work})
    expect(sha256(storedDisk)).not.toBe(before)
  })

  it('refuses for a machine whose project has moved', async () => {
    const {home, root, env} = storeWith([])
    const work = path.join(home, 'work')
    mkdirSync(work)
    await addBox({source: boxFile(work, 'first', readFileSync(makeDisk(path.join(work, 'one.qcow2')))), env, cwd: work})
    const dir = project(home, 'p')
    await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
    renameSync(dir, path.join(home, 'elsewhere'))
    const second = boxFile(work, 'second', readFileSync(makeDisk(path.join(work, 'two.qcow2'), {size: '32M'})))
    await expect(addBox({source: second, force: true, env, cwd: work})).rejects.toMatchObject({code: 'BOX_IN_USE'})
  })

  it('waits for the store lock like every other change of the store', async () => {
    const {root} = storeWith([])
    const order: string[] = []
    await Promise.all([
      withStoreLock(root, async () => {
        order.push('a')
        await new Promise((resolve) => setTimeout(resolve, 100))
        order.push('a done')
      }),
      withStoreLock(root, async () => {
        order.push('b')
      }),
    ])
    // Whichever comes first, the other never runs inside it.
    expect([
      ['a', 'a done', 'b'],
      ['b', 'a', 'a done'],
    ]).toContainEqual(order)
  })
})
