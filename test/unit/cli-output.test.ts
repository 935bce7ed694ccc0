import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {beforeAll, describe, expect, it} from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')
const bin = path.join(root, 'bin/run.js')
let work: string

function vm(args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: {...process.env, VM_HOME: path.join(work, '.vm-home'), NO_COLOR: '1'},
  })
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-cli-output-'))
})

/** The built CLI is a minified bundle: what it prints must not depend on its identifiers. */
describe('the built CLI', () => {
  it('is the minified bundle: class names are not kept in it', () => {
    // dist/commands.js loads the CLI bundled as dist/app.cjs (src/cli/commands-entry.ts).
    const bundle = readFileSync(path.join(root, 'dist/app.cjs'), 'utf8')
    expect(bundle).toContain('box:add')
    expect(bundle).not.toMatch(/class (VmError|UserError|UsageError)\b/)
  })

  it('--json errors carry the real class name, and nothing else is printed', () => {
    writeFileSync(path.join(work, 'Vmfile'), 'box: vmfile/tiny\ncpus: 0\n')
    const result = vm(['validate', '--json'])
    expect(result.code).toBe(1)
    const json = JSON.parse(result.stdout)
    expect(json.error).toMatchObject({name: 'UserError', code: 'VMFILE_INVALID', kind: 'user'})
    expect(result.stderr).toBe('')
  })

  it('usage errors are named UsageError, for unknown flags and unknown commands', () => {
    expect(JSON.parse(vm(['validate', '--json', '--bogus']).stdout).error.name).toBe('UsageError')
    expect(JSON.parse(vm(['valdate', '--json']).stdout).error.name).toBe('UsageError')
  })

  it('a Vmfile value with control characters prints escaped', () => {
    writeFileSync(path.join(work, 'Vmfile'), 'box: vmfile/tiny\nhostname: "web\\e]0;owned\\a"\n')
    const result = vm(['validate'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('not "web\\x1b]0;owned\\x07"')
    expect(result.stderr).not.toContain('\u001B')
  })
})
