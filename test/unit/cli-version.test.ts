import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')

function node(args: string[]) {
  const result = spawnSync(process.execPath, args, {cwd: root, encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

describe('vm --version', () => {
  it('prints, without loading oclif, exactly the line oclif prints', () => {
    const fast = node([path.join(root, 'bin/run.js'), '--version'])
    expect(fast.code).toBe(0)
    const {name, version} = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {name: string; version: string}
    expect(fast.stdout).toMatch(new RegExp(`^${name}/${version.replaceAll('.', '\\.')} \\S+-\\S+ node-${process.version}\\n$`))
    // oclif's own answer, through its execute() with the same argv, from the package root (as
    // bin/run.js passes it: bin/ has a package.json of its own, which only says CommonJS).
    const bundle = new URL('../../dist/commands.js', import.meta.url).href
    const oclif = node([
      '--input-type=module',
      '-e',
      `const {execute} = await import(${JSON.stringify(bundle)}); await execute({dir: ${JSON.stringify(new URL('../../package.json', import.meta.url).href)}, args: ['--version']})`,
    ])
    expect(oclif.code, oclif.stderr).toBe(0)
    expect(fast.stdout).toBe(oclif.stdout)
  })
})
