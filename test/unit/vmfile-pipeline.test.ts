import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import Validate from '../../src/commands/validate.js'
import {VmError} from '../../src/errors/errors.js'
import {loadProject} from '../../src/vmfile/index.js'
import {runCommand, tempProject} from '../helpers/run-command.js'

/**
 * One pipeline reads the Vmfile: vm validate and the commands that start machines (loadProject)
 * accept, refuse and name the file alike, from wherever they run and for whichever file.
 */

/** What loadProject throws, in the shape --json prints an error. */
function loadError(cwd: string, file?: string) {
  try {
    loadProject(cwd, file)
  } catch (error) {
    const {message, code, details} = error as VmError
    return {message, code, details}
  }
  throw new Error('loadProject accepted the Vmfile')
}

async function validateJson(argv: string[]) {
  const result = await runCommand(Validate, [...argv, '--json'])
  return JSON.parse(result.stdout) as {result?: {file: string; machines: string[]; primary: string}; error?: Record<string, unknown>}
}

const invalid = 'box: vmfile/tiny\ncpus: 0\nforwarded_ports: [{guest: 1, host: 9000}, {guest: 2, host: 9000}]\n'

describe('the Vmfile pipeline has one owner', () => {
  it('from a subdirectory, loadProject refuses with the same located error as vm validate', async () => {
    const dir = tempProject()
    const sub = path.join(dir, 'src', 'app')
    mkdirSync(sub, {recursive: true})
    writeFileSync(path.join(dir, 'Vmfile'), invalid)
    const {error} = await validateJson(['--cwd', sub])
    const expected = {message: error?.message, code: error?.code, details: error?.details}
    expect(expected.details).toEqual([
      `${path.join('..', '..', 'Vmfile')}:2:7 cpus: must be at least 1, not 0`,
      expect.stringMatching(/^\.\.\/\.\.\/Vmfile:3:\d+ forwarded_ports\[1\]: host port 9000\/tcp/),
    ])
    expect(loadError(sub)).toEqual(expected)
  })

  it('a named file is read the same way by both, relative to the directory given', async () => {
    const dir = tempProject()
    const other = path.join(dir, 'elsewhere')
    mkdirSync(other)
    writeFileSync(path.join(dir, 'web.vmfile'), 'box: vmfile/tiny\nmachines: {web: {}, db: {primary: true}}\n')
    writeFileSync(path.join(dir, 'bad.vmfile'), invalid)

    const {result} = await validateJson(['--cwd', other, '../web.vmfile'])
    const project = loadProject(other, '../web.vmfile')
    expect(result).toEqual({
      valid: true,
      file: project.file,
      machines: project.machines.map((machine) => machine.name),
      primary: project.primary,
    })
    expect(result).toMatchObject({file: path.join(dir, 'web.vmfile'), machines: ['web', 'db'], primary: 'db'})

    const {error} = await validateJson(['--cwd', other, '../bad.vmfile'])
    expect(loadError(other, '../bad.vmfile')).toEqual({message: error?.message, code: error?.code, details: error?.details})
    expect(error?.message).toBe('../bad.vmfile has 2 problems')
  })

  it('cloud_init and nat: files resolved against the Vmfile, a missing file and two sources refused with their location', async () => {
    const dir = tempProject()
    mkdirSync(path.join(dir, 'ci'))
    writeFileSync(path.join(dir, 'ci', 'user-data'), '#cloud-config\n')
    writeFileSync(
      path.join(dir, 'Vmfile'),
      'box: org/cloud\nnat: {isolated: true}\ncloud_init:\n  user_data_file: ci/user-data\n  network_config: "version: 2"\n',
    )
    const [machine] = loadProject(dir).machines
    expect(machine?.nat).toEqual({isolated: true})
    expect(machine?.cloudInit).toEqual({
      userData: undefined,
      userDataFile: path.join(dir, 'ci', 'user-data'),
      networkConfig: 'version: 2',
      networkConfigFile: undefined,
    })
    writeFileSync(
      path.join(dir, 'Vmfile'),
      'box: org/cloud\nmachines:\n  web:\n    cloud_init:\n      user_data_file: ci/missing\n      network_config: x\n      network_config_file: ci\n',
    )
    const {error} = await validateJson(['--cwd', dir])
    expect(error?.details).toEqual([
      expect.stringMatching(/^Vmfile:5:\d+ machines\.web\.cloud_init: set "network_config" or "network_config_file", not both$/),
      expect.stringMatching(/^Vmfile:5:\d+ machines\.web\.cloud_init\.user_data_file: the file "ci\/missing" does not exist/),
      expect.stringMatching(/^Vmfile:7:\d+ machines\.web\.cloud_init\.network_config_file: "ci" is not a file$/),
    ])
    expect(loadError(dir).details).toEqual(error?.details)
  })
})
