import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {beforeAll, describe, expect, it} from 'vitest'

import {unknownFlagError} from '../../src/cli/unknown-flag.js'

const root = path.resolve(import.meta.dirname, '../..')
const bin = path.join(root, 'bin/run.js')
let work: string

function vm(args: string[]) {
  // As users run it: NODE_ENV=test (set by vitest) turns on oclif's warnings for developers.
  const {NODE_ENV: _test, ...env} = process.env
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: {...env, VM_HOME: path.join(work, '.vm-home'), NO_COLOR: '1'},
  })
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

/** The command a hint tells the user to run ('Run "vm help box add" for ...'), as argv. */
function suggestedCommand(hint: string): string[] {
  const match = /Run "vm ([^"]*)"/.exec(hint)
  expect(match, hint).not.toBeNull()
  return match![1]!.split(' ')
}

interface Manifest {
  commands: Record<string, {hidden?: boolean; flags: Record<string, unknown>}>
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-cli-help-'))
})

describe('vm help', () => {
  it('lists every visible command, and --json gives the same list', () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as Manifest
    const visible = Object.entries(manifest.commands)
      .filter(([, command]) => command.hidden !== true)
      .map(([id]) => id.replaceAll(':', ' '))
    const text = vm(['help'])
    expect(text.code).toBe(0)
    for (const id of visible.filter((id) => !id.includes(' '))) expect(text.stdout).toMatch(new RegExp(`^  ${id} `, 'm'))
    const json = vm(['help', '--json'])
    expect(json.code).toBe(0)
    expect(
      JSON.parse(json.stdout)
        .result.commands.map((command: {id: string}) => command.id)
        .sort(),
    ).toEqual(visible.sort())
  })

  it('vm help COMMAND and vm help box add show that command, like --help', () => {
    const status = vm(['help', 'status'])
    expect(status.code).toBe(0)
    expect(status.stdout).toContain('$ vm status')
    expect(status.stdout).toBe(vm(['status', '--help']).stdout)
    const boxAdd = vm(['help', 'box', 'add'])
    expect(boxAdd.code).toBe(0)
    expect(boxAdd.stdout).toContain('--box-version')
    const json = JSON.parse(vm(['help', 'box', 'add', '--json']).stdout)
    expect(json.result.subject).toBe('box add')
    expect(json.result.flags.map((flag: {name: string}) => flag.name)).toContain('box-version')
  })

  it('vm help for an unknown command is a usage error with a suggestion, also under --json', () => {
    const text = vm(['help', 'box', 'ad'])
    expect(text.code).toBe(2)
    expect(text.stdout).toBe('')
    expect(text.stderr).toContain('"box ad" is not a vm command')
    expect(text.stderr).toContain('Did you mean "vm box add"?')
    const json = vm(['help', 'stauts', '--json'])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stdout).error).toMatchObject({name: 'UsageError', code: 'COMMAND_NOT_FOUND'})
  })

  it('the help an error points to exists: unknown commands and unknown flags', () => {
    const command = vm(['valdate', '--json'])
    expect(command.code).toBe(2)
    expect(vm(suggestedCommand(JSON.parse(command.stdout).error.hint)).code).toBe(0)
    const flag = vm(['box', 'add', 'x', '--json', '--nmae', 'y'])
    expect(flag.code).toBe(2)
    const hint = JSON.parse(flag.stdout).error.hint as string
    expect(suggestedCommand(hint)).toEqual(['help', 'box', 'add'])
    expect(vm(suggestedCommand(hint)).code).toBe(0)
  })
})

describe('unknown flags', () => {
  it('get a "did you mean" with exit 2, on stderr, and stdout stays empty', () => {
    const result = vm(['validate', '--jsn'])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('Unknown flag --jsn for "vm validate"')
    expect(result.stderr).toContain('Did you mean --json?')
    expect(result.stderr).not.toContain('\\n')
  })

  it('under --json: the usual error shape with the flags and the suggestions', () => {
    const result = vm(['init', '--output', '-', '--minimall', '--json'])
    expect(result.code).toBe(2)
    expect(result.stderr).toBe('')
    const json = JSON.parse(result.stdout)
    expect(json.status).toBe(2)
    expect(json.error).toMatchObject({
      name: 'UsageError',
      code: 'UNKNOWN_FLAG',
      kind: 'usage',
      data: {flags: ['--minimall'], suggestions: ['--minimal']},
    })
  })

  it('suggest the closest flag, global flags included, and nothing when none is close', () => {
    const flags = {force: {}, minimal: {}, output: {}, cwd: {}, debug: {}, json: {}, help: {}, secret: {hidden: true}}
    expect(unknownFlagError('init', ['--forse'], flags).hint).toBe('Did you mean --force? Run "vm help init" for its flags.')
    expect(unknownFlagError('init', ['--cwdd=/tmp'], flags).hint).toContain('Did you mean --cwd?')
    expect(unknownFlagError('init', ['--secre'], flags).hint).toBe('Run "vm help init" for its flags.')
    expect(unknownFlagError('init', ['-x'], flags).hint).toBe('Run "vm help init" for its flags.')
    const two = unknownFlagError('box:add', ['--nmae', '--zzzzzz'], {name: {}})
    expect(two.message).toBe('Unknown flags --nmae, --zzzzzz for "vm box add"')
    expect(two.hint).toBe('Did you mean --name? Run "vm help box add" for its flags.')
  })
})

describe('the command manifest', () => {
  it('describes every command with its flags (it is written from the real classes)', () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as Manifest
    for (const [id, command] of Object.entries(manifest.commands)) {
      if (id.startsWith('autocomplete')) continue
      expect(Object.keys(command.flags), id).toContain('json')
    }
  })
})
