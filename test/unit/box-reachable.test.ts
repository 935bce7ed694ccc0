import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {addBox} from '../../src/box/add.js'
import {unreachableBoxWarnings} from '../../src/box/locate.js'
import Init from '../../src/commands/init.js'
import Validate from '../../src/commands/validate.js'
import {catalogJson, makeBox} from '../helpers/box-fixtures.js'
import {runCommand, tempProject} from '../helpers/run-command.js'

/** The warnings of a --json run, which must succeed: a missing box is no error. */
async function jsonWarnings(command: typeof Init | typeof Validate, argv: string[]): Promise<string[]> {
  const result = await runCommand(command, [...argv, '--json'])
  expect(result.exitCode, result.stdout).toBe(0)
  const json = JSON.parse(result.stdout) as {status: number; warnings: string[]}
  expect(json.status).toBe(0)
  return json.warnings
}

const saved = {registries: process.env.VM_BOX_REGISTRIES, builtin: process.env.VM_NO_BUILTIN_REGISTRY}
let dir: string

beforeEach(() => {
  dir = tempProject('vm-box-reachable-')
  // Only what the test sets up: no registry from the environment, none shipped in the checkout.
  delete process.env.VM_BOX_REGISTRIES
  process.env.VM_NO_BUILTIN_REGISTRY = '1'
})

afterEach(() => {
  for (const [name, value] of [
    ['VM_BOX_REGISTRIES', saved.registries],
    ['VM_NO_BUILTIN_REGISTRY', saved.builtin],
  ] as const) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
})

describe('a box that vm up would not find', () => {
  it('vm init warns, naming the box and how to add it, and still writes the Vmfile', async () => {
    const warnings = await jsonWarnings(Init, ['--cwd', dir, 'acme/nowhere'])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('box acme/nowhere')
    expect(warnings[0]).toContain('vm box add FILE-OR-URL --name acme/nowhere')
    expect(warnings[0]).toContain('VM_BOX_REGISTRIES')
    const text = await runCommand(Init, ['--cwd', dir, '--output', '-'])
    expect(text.exitCode).toBe(0)
    expect(text.stderr).toContain('Warning: box vmfile/debian-12 ')
    expect(text.stdout).toContain('box: vmfile/debian-12')
  })

  it('vm validate warns once per box, naming its machines, exit 0', async () => {
    writeFileSync(path.join(dir, 'Vmfile'), 'machines:\n  web: {box: acme/nowhere}\n  db: {box: acme/nowhere}\n')
    const warnings = await jsonWarnings(Validate, ['--cwd', dir])
    expect(warnings).toEqual([expect.stringContaining('box acme/nowhere of machines web, db is in no box store or registry')])
    const text = await runCommand(Validate, ['--cwd', dir])
    expect(text.exitCode).toBe(0)
    expect(text.stdout).toContain('Vmfile is valid')
    expect(text.stderr).toContain('Warning: box acme/nowhere')
  })

  it('no warning for a box in a registry directory; a warning when its catalog has no allowed version', async () => {
    const registry = path.join(dir, 'registry')
    mkdirSync(path.join(registry, 'acme'), {recursive: true})
    writeFileSync(
      path.join(registry, 'acme', 'web.json'),
      catalogJson('acme/web', [{version: '1.2.0', url: 'web.box', architecture: process.arch === 'arm64' ? 'arm64' : 'amd64'}]),
    )
    process.env.VM_BOX_REGISTRIES = registry
    writeFileSync(path.join(dir, 'Vmfile'), 'box: acme/web\n')
    expect(await jsonWarnings(Validate, ['--cwd', dir])).toEqual([])
    writeFileSync(path.join(dir, 'Vmfile'), 'box: acme/web\nbox_version: ">= 2.0"\n')
    expect(await jsonWarnings(Validate, ['--cwd', dir])).toEqual([expect.stringContaining('box acme/web (version >= 2.0)')])
  })

  it('no warning with box_url, for an http registry (not asked offline), or for a box file next to the Vmfile', async () => {
    writeFileSync(path.join(dir, 'Vmfile'), 'box: acme/web\nbox_url: https://boxes.invalid/acme/web.json\n')
    expect(await jsonWarnings(Validate, ['--cwd', dir])).toEqual([])
    const requests = [{machine: 'default', box: 'acme/web'}]
    expect(await unreachableBoxWarnings(requests, dir, {...process.env, VM_BOX_REGISTRIES: 'https://boxes.invalid'})).toEqual([])
    writeFileSync(path.join(dir, 'local.box'), 'not read at validate time')
    expect(await unreachableBoxWarnings([{machine: 'default', box: 'local.box'}], dir)).toEqual([])
    expect(await unreachableBoxWarnings([{machine: 'default', box: 'missing.box'}], dir)).toHaveLength(1)
  })

  it('no warning once the box is in the store', async () => {
    writeFileSync(path.join(dir, 'Vmfile'), 'box: acme/stored\n')
    expect(await jsonWarnings(Validate, ['--cwd', dir])).toHaveLength(1)
    await addBox({source: makeBox(dir, 'stored.box'), name: 'acme/stored', cwd: dir})
    expect(await jsonWarnings(Validate, ['--cwd', dir])).toEqual([])
  })
})
