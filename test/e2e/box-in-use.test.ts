import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {makeBox, makeDisk} from '../helpers/box-fixtures.js'
import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

/**
 * End-to-end: a machine made by `vm up` from the tiny box holds the box against `vm box
 * remove`, `vm box prune` and `vm box add --force`, running or halted, whatever happened to
 * the global index; after `vm destroy` the box can go.
 */
describe('a box under a machine', () => {
  let fixture: MachineFixture
  let other: string
  const run = (args: string[]) => fixture.run(args)
  const boxDisk = () => path.join(fixture.home, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt')
  const index = () => path.join(fixture.home, 'data/machines.json')

  beforeAll(() => {
    fixture = machineFixture('box-in-use', 'tiny')
    writeFileSync(path.join(fixture.project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nsynced_folders: false\n')
    // Another box of the same name and version, with other content.
    const work = path.join(fixture.home, 'work')
    mkdirSync(work, {recursive: true})
    other = makeBox(work, 'other.box', {
      metadata: {provider: 'libvirt', format: 'qcow2', name: 'vmfile/tiny', version: '1.0.0', architecture: 'amd64'},
      files: {'box.img': readFileSync(makeDisk(path.join(work, 'other.qcow2')))},
    })
  })

  afterAll(() => fixture.cleanup())

  /** Every way to lose the box is refused, naming the machine; the box is untouched. */
  async function expectHeld(): Promise<void> {
    const metadata = readFileSync(path.join(boxDisk(), 'metadata.json'), 'utf8')
    const remove = await run(['box', 'remove', 'vmfile/tiny'])
    expect(remove.code, remove.stderr).toBe(1)
    expect(remove.stderr).toContain('is used by a machine')
    expect(remove.stderr).toContain(`machine "default" in ${fixture.project}`)
    const add = await run(['box', 'add', other, '--force'])
    expect(add.code, add.stderr).toBe(1)
    expect(add.stderr).toContain(`machine "default" in ${fixture.project}`)
    expect(readFileSync(path.join(boxDisk(), 'metadata.json'), 'utf8')).toBe(metadata)
    expect(existsSync(path.join(boxDisk(), 'box.img')) || existsSync(path.join(boxDisk(), 'box.qcow2'))).toBe(true)
  }

  it('running, with the global index deleted', async () => {
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    rmSync(index(), {force: true})
    await expectHeld()
    // The machine still boots from its box: the disk under its overlay is the one it was made from.
    expect((await run(['ssh', '-c', 'echo alive'])).stdout.trim()).toBe('alive')
  })

  it('halted, with a corrupt global index (which is reported)', async () => {
    expect((await run(['halt'])).code).toBe(0)
    writeFileSync(index(), '{"machines": [')
    await expectHeld()
    const listing = await run(['global-status'])
    expect(listing.stderr).toMatch(/Warning: the machine index .* is unreadable/)
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect((await run(['ssh', '-c', 'echo alive'])).stdout.trim()).toBe('alive')
  })

  it('destroyed, the box can be removed', async () => {
    expect((await run(['destroy', '-f'])).code).toBe(0)
    const remove = await run(['box', 'remove', 'vmfile/tiny'])
    expect(remove.code, remove.stderr).toBe(0)
    expect(remove.stdout).toContain('Removed box vmfile/tiny 1.0.0')
  })
})
