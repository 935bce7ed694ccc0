import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {VmError} from '../../src/errors/errors.js'
import {quietEvents} from '../../src/machine/events.js'
import {upMachine} from '../../src/machine/up.js'
import {loadProject} from '../../src/vmfile/index.js'

/**
 * What the libvirt engine refuses of a Vmfile is reported like the schema's problems:
 * Vmfile:LINE:COL key.path: message, at the value the machine gets (its own, or the top-level
 * one it inherits). Nothing is booted: up refuses before it makes anything.
 */
describe('engine problems carry the Vmfile position', () => {
  let dir: string
  let home: string
  const saved = process.env.VM_HOME

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vm-lvpos-'))
    home = mkdtempSync(path.join(tmpdir(), 'vm-lvpos-home-'))
    process.env.VM_HOME = home
  })

  afterEach(() => {
    if (saved === undefined) delete process.env.VM_HOME
    else process.env.VM_HOME = saved
    rmSync(dir, {recursive: true, force: true})
    rmSync(home, {recursive: true, force: true})
  })

  async function refusal(text: string, machine: string): Promise<string[]> {
    writeFileSync(path.join(dir, 'Vmfile'), text)
    const project = loadProject(dir)
    const config = project.machines.find((entry) => entry.name === machine)!
    try {
      await upMachine(dir, config, quietEvents, {driver: 'libvirt'})
    } catch (error) {
      expect(error).toBeInstanceOf(VmError)
      return (error as VmError).details
    }
    throw new Error('up did not refuse the Vmfile')
  }

  it("a machine's own setting: its line and column", async () => {
    const text = ['box: vmfile/tiny', 'machines:', '  web:', '    cpus: 1', '    nat:', '      isolated: true', ''].join('\n')
    const details = await refusal(text, 'web')
    expect(details).toHaveLength(1)
    expect(details[0]).toMatch(/^Vmfile:6:17 machines\.web\.nat\.isolated: is not supported by the libvirt engine/)
  })

  it('an inherited top-level setting: where it is written, named by its own path', async () => {
    const text = ['box: vmfile/tiny', 'nat:', '  isolated: true', 'machines:', '  web: {}', '  db: {nat: {isolated: false}}', ''].join('\n')
    const details = await refusal(text, 'web')
    expect(details).toHaveLength(1)
    expect(details[0]).toMatch(/^Vmfile:3:13 nat\.isolated: is not supported/)
  })

  it('a URI from LIBVIRT_DEFAULT_URI is named as such, placed at the machine', async () => {
    const before = process.env.LIBVIRT_DEFAULT_URI
    process.env.LIBVIRT_DEFAULT_URI = 'not a uri'
    try {
      const details = await refusal(['box: vmfile/tiny', 'machines:', '  web:', '    cpus: 1', ''].join('\n'), 'web')
      expect(details).toEqual([
        expect.stringMatching(/^Vmfile:4:5 machines\.web\.libvirt\.uri: LIBVIRT_DEFAULT_URI: "not a uri" is not a libvirt URI/),
      ])
    } finally {
      if (before === undefined) delete process.env.LIBVIRT_DEFAULT_URI
      else process.env.LIBVIRT_DEFAULT_URI = before
    }
  })

  it('the single machine of a file without machines:', async () => {
    const text = ['box: vmfile/tiny', 'nat: {isolated: true}', ''].join('\n')
    const details = await refusal(text, 'default')
    expect(details[0]).toMatch(/^Vmfile:2:17 nat\.isolated: /)
  })
})
