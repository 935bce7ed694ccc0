import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {newMachineId} from '../../src/machine/up.js'
import {addToIndex} from '../../src/state/global-index.js'
import {machineId} from '../../src/state/machine-files.js'

describe('the id of a new machine', () => {
  const saved = process.env.VM_HOME
  let home: string
  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'vm-machine-id-'))
    process.env.VM_HOME = home
  })
  afterEach(() => {
    if (saved === undefined) delete process.env.VM_HOME
    else process.env.VM_HOME = saved
  })

  it('is the hash of its project directory and name when nothing else answers to it', async () => {
    expect(await newMachineId('/projects/app', 'web')).toBe(machineId('/projects/app', 'web'))
  })

  it('differs from a machine whose project was moved away from the same directory', async () => {
    const moved = machineId('/projects/app', 'web')
    // The moved machine keeps its id; the index names its new directory.
    await addToIndex({id: moved, name: 'web', projectDir: '/projects/app-old'})
    const id = await newMachineId('/projects/app', 'web')
    expect(id).not.toBe(moved)
    expect(id).toMatch(/^[0-9a-f]{16}$/)
  })

  it('differs from every id the box store still holds a reference for, even without an index entry', async () => {
    const first = machineId('/projects/app', 'web')
    const dir = path.join(home, 'data/boxes/.users/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt')
    mkdirSync(dir, {recursive: true})
    writeFileSync(path.join(dir, `${first}.json`), '{}')
    const second = await newMachineId('/projects/app', 'web')
    expect(second).not.toBe(first)
    writeFileSync(path.join(dir, `${second}.json`), '{}')
    const third = await newMachineId('/projects/app', 'web')
    expect(new Set([first, second, third]).size).toBe(3)
  })
})
