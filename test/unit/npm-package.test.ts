import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')
let work: string
let prefix: string

function run(program: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  // As users run it: NODE_ENV=test (set by vitest) turns on oclif's warnings for developers.
  const {NODE_ENV: _test, ...inherited} = process.env
  const result = spawnSync(program, args, {cwd, encoding: 'utf8', env: {...inherited, NO_COLOR: '1', ...env}})
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

/**
 * `npm pack` of this checkout (already built by the unit setup), installed with
 * `npm install -g --prefix` into a temporary prefix, offline: everything vm needs at run time
 * is bundled into dist/, so the package has no dependencies to fetch.
 */
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-npm-package-'))
  prefix = path.join(work, 'prefix')
  const npmEnv = {npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false'}
  const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], root, npmEnv)
  expect(pack.code, pack.stderr).toBe(0)
  const tarball = readdirSync(work).find((name) => /^vmfile-.*\.tgz$/.test(name))
  expect(tarball).toBeDefined()
  const install = run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', path.join(work, tarball!)],
    work,
    npmEnv,
  )
  expect(install.code, install.stderr).toBe(0)
}, 180_000)

afterAll(() => {
  if (work !== undefined) rmSync(work, {recursive: true, force: true})
})

describe('the npm package', () => {
  it('installs a working vm: --version, init --output -, validate', () => {
    const vm = path.join(prefix, 'bin', 'vm')
    const project = path.join(work, 'project')
    mkdirSync(project)
    const env = {VM_HOME: path.join(work, 'vm-home')}
    const version = run(vm, ['--version'], project, env)
    expect(version.code, version.stderr).toBe(0)
    expect(version.stdout).toMatch(/^vmfile\/\d+\.\d+\.\d+ /)
    const init = run(vm, ['init', '--output', '-', '--minimal'], project, env)
    expect(init.code, init.stderr).toBe(0)
    expect(init.stdout).toContain('box: vmfile/debian-12')
    expect(run(vm, ['init', 'vmfile/tiny'], project, env).code).toBe(0)
    const validate = run(vm, ['validate', '--json'], project, env)
    expect(validate.code, validate.stderr).toBe(0)
    expect(JSON.parse(validate.stdout).result).toMatchObject({valid: true, machines: ['default']})
    // The package ships no boxes: the box warning says how to add one.
    expect(JSON.parse(validate.stdout).warnings).toEqual([expect.stringContaining('vm box add')])
    expect(run(vm, ['help', 'box', 'add'], project, env).code).toBe(0)
  }, 60_000)

  it('ships what vm reads at run time: templates, schema, the insecure keys, the network hub', () => {
    const installed = path.join(prefix, 'lib', 'node_modules', 'vmfile')
    for (const file of [
      'templates/Vmfile.hbs',
      'schema/vmfile.schema.json',
      'boxes/keys/vmfile_insecure_key',
      'boxes/keys/vmfile_insecure_key.pub',
      'boxes/keys/vagrant_insecure_key_ed25519',
      'boxes/keys/vagrant_insecure_key_rsa',
      'dist/hub.js',
      'oclif.manifest.json',
    ]) {
      expect(existsSync(path.join(installed, file)), file).toBe(true)
      expect(statSync(path.join(installed, file)).size, file).toBeGreaterThan(0)
    }
    // No dependency was installed: the bundle carries them.
    expect(existsSync(path.join(installed, 'node_modules'))).toBe(false)
  })
})
