import {existsSync, readFileSync, writeFileSync} from 'node:fs'

import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

describe('synced folders with the tiny box', () => {
  let fixture: MachineFixture
  let project: string
  const run = (args: string[]) => fixture.run(args)

  beforeAll(() => {
    fixture = machineFixture('sync', 'tiny')
    project = fixture.project
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\n')
    writeFileSync(path.join(project, 'from-host.txt'), 'written on the host\n')
  })

  afterAll(() => fixture.cleanup())

  it('the project directory appears at /vm over 9p (chosen automatically), written from both sides', async () => {
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toContain(`synced folder ${project} -> /vm (9p, chosen automatically)`)
    expect((await run(['ssh', '-c', 'cat /vm/from-host.txt'])).stdout).toBe('written on the host\n')
    expect((await run(['ssh', '-c', 'echo written in the guest | sudo -n tee /vm/from-guest.txt >/dev/null'])).code).toBe(0)
    expect(readFileSync(path.join(project, 'from-guest.txt'), 'utf8')).toBe('written in the guest\n')
    writeFileSync(path.join(project, 'later.txt'), 'changed while running\n')
    expect((await run(['ssh', '-c', 'cat /vm/later.txt'])).stdout).toBe('changed while running\n')
  })

  it('synced_folders: false turns it off', async () => {
    await run(['destroy', '-f'])
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nsynced_folders: false\n')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).not.toContain('synced folder')
    expect((await run(['ssh', '-c', 'test -e /vm/from-host.txt && echo yes || echo no'])).stdout.trim()).toBe('no')
    expect(existsSync(path.join(project, 'from-host.txt'))).toBe(true)
  })
})
