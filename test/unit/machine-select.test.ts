import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {findMachineById, resolveMachines} from '../../src/machine/select.js'
import type {IndexEntry} from '../../src/state/global-index.js'

const top = mkdtempSync(path.join(tmpdir(), 'vm-select-'))
afterAll(() => rmSync(top, {recursive: true, force: true}))

function project(name: string, vmfile: string): string {
  const dir = path.join(top, name)
  mkdirSync(dir, {recursive: true})
  writeFileSync(path.join(dir, 'Vmfile'), vmfile)
  return dir
}

const alpha = project('alpha', 'box: vmfile/tiny\nmachines: {web: {}, db: {primary: true}}\n')
const beta = project('beta', 'box: vmfile/tiny\nmachines: {api: {}}\n')
const elsewhere = path.join(top, 'elsewhere')
mkdirSync(elsewhere)

const entries: IndexEntry[] = [
  {id: 'a1b2c3d4e5f60718', name: 'web', projectDir: alpha},
  {id: 'a1b2ffff00001111', name: 'db', projectDir: alpha},
  {id: '9f8e7d6c5b4a3921', name: 'api', projectDir: beta},
]
const index = () => entries

const names = (selection: {machines: Array<{name: string}>}) => selection.machines.map((machine) => machine.name)

describe('machine ids from global-status', () => {
  it('finds a full id, a unique prefix, in any case; nothing for non-hex text or too short a prefix', () => {
    expect(findMachineById('9f8e7d6c5b4a3921', entries)?.name).toBe('api')
    expect(findMachineById('9F8E', entries)?.name).toBe('api')
    expect(findMachineById('a1b2c', entries)?.name).toBe('web')
    expect(findMachineById('web', entries)).toBeUndefined()
    expect(findMachineById('9f8', entries)).toBeUndefined()
    expect(findMachineById('0000', entries)).toBeUndefined()
  })

  it('refuses an ambiguous prefix, naming the candidates', () => {
    expect(() => findMachineById('a1b2', entries)).toThrow(/ambiguous.*2 machines/)
    try {
      findMachineById('a1b2', entries)
    } catch (error) {
      expect((error as {details: string[]}).details.join('\n')).toContain('a1b2ffff00001111')
    }
  })

  it('resolves an id from a directory with no Vmfile, loading the machine’s own project', () => {
    const selection = resolveMachines(elsewhere, ['9f8e7d'], 'all', index)
    expect(selection.project.dir).toBe(beta)
    expect(names(selection)).toEqual(['api'])
  })

  it('resolves an id of another project from inside a project', () => {
    const selection = resolveMachines(alpha, ['9f8e7d6c'], 'primary', index)
    expect(selection.project.dir).toBe(beta)
    expect(names(selection)).toEqual(['api'])
  })

  it('prefers a machine name of the current project, and mixes names and ids of it', () => {
    const selection = resolveMachines(alpha, ['web', 'a1b2ff'], 'all', index)
    expect(selection.project.dir).toBe(alpha)
    expect(names(selection)).toEqual(['web', 'db'])
  })

  it('refuses machines of two projects at once', () => {
    expect(() => resolveMachines(alpha, ['web', '9f8e7d'], 'all', index)).toThrow(/2 different projects/)
  })

  it('says what is wrong when a name is neither a machine here nor an id', () => {
    expect(() => resolveMachines(elsewhere, ['web'], 'all', index)).toThrow(
      /No machine "web": no Vmfile in .* no machine id starts with "web"/,
    )
    expect(() => resolveMachines(alpha, ['wbe'], 'all', index)).toThrow(/No machine named "wbe"/)
  })

  it('without names, keeps to the project around the directory', () => {
    expect(names(resolveMachines(alpha, [], 'primary', index))).toEqual(['db'])
    expect(() => resolveMachines(elsewhere, [], 'all', index)).toThrow(/No Vmfile/)
  })
})
