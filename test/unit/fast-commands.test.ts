import {spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {FAST_COMMANDS, fastPathBlockedBy, parseFastArgs} from '../../src/cli/fast/args.js'
import {machinePaths} from '../../src/state/machine-files.js'

// bin/run.js runs the everyday forms of `vm status`, `vm validate`, `vm init` and `vm global-status` without oclif
// (src/cli/fast-entry.ts); VM_NO_FAST=1 runs them under oclif. Both must print the same bytes
// and exit the same way.
const root = path.resolve(import.meta.dirname, '../..')
const scratch = mkdtempSync(path.join(tmpdir(), 'vm-fast-cmd-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))
const home = path.join(scratch, 'home')

async function vm(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  // NODE_ENV as users have it: vitest sets it to "test", which makes oclif print development warnings.
  const {VM_DEBUG: _debug, VM_NO_FAST: _noFast, DEBUG: _oclifDebug, NODE_ENV: _nodeEnv, ...clean} = process.env
  const child = spawn(process.execPath, [path.join(root, 'bin/run.js'), ...args], {
    cwd,
    env: {...clean, VM_HOME: home, NO_COLOR: '1', ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return {code, stdout, stderr}
}

/**
 * Runs `args` both ways in `cwd`, at once, and expects the same result; returns it. With
 * `reset`, one after the other, each after reset() (for a command that writes a file).
 */
async function same(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}, reset?: () => void) {
  let full
  let fast
  if (reset === undefined) {
    ;[full, fast] = await Promise.all([vm(cwd, args, {...env, VM_NO_FAST: '1'}), vm(cwd, args, env)])
  } else {
    reset()
    full = await vm(cwd, args, {...env, VM_NO_FAST: '1'})
    reset()
    fast = await vm(cwd, args, env)
  }
  expect(fast, `vm ${args.join(' ')}`).toEqual(full)
  return fast
}

function project(name: string, vmfile: string | undefined): string {
  const dir = path.join(scratch, name)
  mkdirSync(dir, {recursive: true})
  if (vmfile !== undefined) writeFileSync(path.join(dir, 'Vmfile'), vmfile)
  return dir
}

describe('the fast path of vm status, validate, init and global-status: which arguments it takes', () => {
  it('the everyday forms; anything else (help, debug, --, unknown or repeated flags, a missing value) is for oclif', () => {
    expect(parseFastArgs('status', [])).toMatchObject({args: [], json: false})
    expect(parseFastArgs('status', ['web', 'db', '--json'])).toMatchObject({args: ['web', 'db'], json: true})
    expect(parseFastArgs('status', ['--cwd', scratch])).toMatchObject({cwd: scratch})
    expect(parseFastArgs('validate', [`--cwd=${scratch}`, 'Vmfile'])).toMatchObject({cwd: scratch, args: ['Vmfile']})
    expect(parseFastArgs('init', ['vmfile/tiny', '-m', '-f', '-o', '-', '--box-version', '>= 1.0'])).toMatchObject({
      args: ['vmfile/tiny'],
      booleans: {minimal: true, force: true},
      values: {output: '-', 'box-version': '>= 1.0'},
    })
    expect(parseFastArgs('init', ['--output=-'])).toMatchObject({values: {output: '-'}})
    expect(parseFastArgs('global-status', ['--prune', '--json'])).toMatchObject({booleans: {prune: true}, json: true})
    for (const [command, argv] of [
      ['status', ['--help']],
      ['status', ['-h']],
      ['status', ['--debug']],
      ['status', ['--', 'web']],
      ['status', ['--bogus']],
      ['status', ['--json', '--json']],
      ['status', ['--json=true']],
      ['status', ['--cwd']],
      ['status', ['--cwd', path.join(scratch, 'nowhere')]],
      ['status', ['--cwd', '--json']],
      ['status', ['']],
      ['status', ['-']],
      ['validate', ['a', 'b']],
      ['validate', ['-m']],
      ['init', ['-o']],
      ['init', ['-o', '--json']],
      ['init', ['-o-']],
      ['init', ['-mf']],
      ['init', ['--output=']],
      ['init', ['a', 'b']],
      ['init', ['--force=yes']],
      ['global-status', ['web']],
      ['global-status', ['--prune', '--prune']],
    ] as const)
      expect(parseFastArgs(command, argv), `${command} ${argv.join(' ')}`).toBeUndefined()
  })

  it('VM_NO_FAST=1, and the environment only oclif reads (DEBUG, VM_CONTENT_TYPE), ask for the full command', () => {
    expect(fastPathBlockedBy({})).toBeUndefined()
    expect(fastPathBlockedBy({VM_NO_FAST: '0', DEBUG: ''})).toBeUndefined()
    expect(fastPathBlockedBy({VM_NO_FAST: '1'})).toBeDefined()
    expect(fastPathBlockedBy({DEBUG: '*'})).toBeDefined()
    expect(fastPathBlockedBy({VM_CONTENT_TYPE: 'json'})).toBeDefined()
  })

  it("knows each command's flags as the command declares them (oclif.manifest.json): name, letter and kind", () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as {
      commands: Record<string, {flags: Record<string, {char?: string; type: 'boolean' | 'option'}>}>
    }
    for (const [command, spec] of Object.entries(FAST_COMMANDS)) {
      const flags = manifest.commands[command]!.flags
      const declared = (name: string) => ({name, type: flags[name]?.type, char: flags[name]?.char})
      for (const [name, char] of Object.entries(spec.booleans)) expect(declared(name)).toEqual({name, type: 'boolean', char})
      for (const [name, char] of Object.entries(spec.values)) expect(declared(name)).toEqual({name, type: 'option', char})
    }
  })
})

describe('the fast path of vm status, validate, init and global-status in the built CLI: the same output as the full command', () => {
  // A box in no store and no registry (the repository's built boxes may be a registry): validate warns.
  const single = project('single', 'box: example/absent\nmemory: 512\n')
  const several = project('several', 'box: vmfile/tiny\nmachines:\n  web: {primary: true}\n  db: {cpus: 2}\n')
  const invalid = project('invalid', 'box: vmfile/tiny\nmemory: lots\nmachines:\n  web:\n    cpus: -1\n    colour: red\n')
  const empty = project('empty', undefined)

  it('is the path taken (VM_DEBUG=1 says so), and the full command runs when it declines', async () => {
    expect((await vm(single, ['status'], {VM_DEBUG: '1'})).stderr).toContain('vm: status fast path\n')
    expect((await vm(single, ['validate'], {VM_DEBUG: '1'})).stderr).toContain('vm: validate fast path\n')
    expect((await vm(single, ['init', '-o', '-'], {VM_DEBUG: '1'})).stderr).toContain('vm: init fast path\n')
    const declined = await vm(single, ['status', '--bogus'], {VM_DEBUG: '1'})
    expect(declined.stderr).toContain('vm: status fast path not taken (arguments it does not handle): running the full command')
    expect(declined.code).toBe(2)
    expect((await vm(single, ['status'], {VM_DEBUG: '1', VM_NO_FAST: '1'})).stderr).not.toContain('fast path')
  })

  it('loads neither oclif nor the app bundle, nor Node built-ins it does not use (net, crypto)', async () => {
    const cache = path.join(scratch, 'cache-fast')
    const preload = path.join(scratch, 'builtins.cjs')
    const list = path.join(scratch, 'builtins.txt')
    writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')))`,
    )
    const {VM_DEBUG: _debug, NODE_ENV: _nodeEnv, ...clean} = process.env
    const child = spawn(process.execPath, ['--require', preload, path.join(root, 'bin/run.js'), 'status'], {
      cwd: several,
      env: {...clean, VM_HOME: home, VM_CACHE_DIR: cache, NO_COLOR: '1'},
      stdio: 'ignore',
    })
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0)
    const loaded = readFileSync(list, 'utf8').split('\n')
    expect(loaded).not.toContain('NativeModule net')
    expect(loaded).not.toContain('NativeModule crypto')
    // Every file read through the code cache leaves its cache: only the fast bundle's and yaml's.
    expect(
      readdirSync(path.join(cache, 'code'))
        .map((name) => name.replace(/-[0-9a-f]{24}\.v8$/, ''))
        .sort(),
    ).toEqual(['fast-status.cjs', 'yaml.cjs'])
  })

  it('vm status: one machine, several, one named, an unknown name, --json, --cwd, no Vmfile, an invalid Vmfile', async () => {
    expect((await same(single, ['status'])).stdout).toContain('not_created')
    await same(single, ['status', '--json'])
    expect((await same(several, ['status'])).stdout).toMatch(/web .*\n.*db /)
    await same(several, ['status', 'db', '--json'])
    expect((await same(several, ['status', 'wbe'])).stderr).toContain('Did you mean "web"?')
    await same(several, ['status', 'wbe', '--json'])
    await same(empty, ['status', '--cwd', several])
    expect((await same(empty, ['status'])).code).not.toBe(0)
    await same(empty, ['status', '--json'])
    expect((await same(invalid, ['status'])).stderr).toMatch(/Vmfile:2:\d+/)
    // Options it leaves to oclif: the full command runs both times.
    expect((await same(single, ['status', '--bogus'])).code).toBe(2)
    await same(empty, ['status', '--cwd', path.join(scratch, 'nowhere')])
  }, 120_000)

  it('vm status warns about a machine whose record cannot be read, in text and in --json', async () => {
    const broken = project('broken', 'box: vmfile/tiny\n')
    const paths = machinePaths(broken, 'default')
    mkdirSync(paths.dir, {recursive: true})
    writeFileSync(paths.record, '{not json')
    expect((await same(broken, ['status'])).stderr).toContain('Warning: [default]')
    expect(JSON.parse((await same(broken, ['status', '--json'])).stdout).warnings).toHaveLength(1)
  }, 60_000)

  it('vm validate: valid (with the warning about a box in no store), a FILE, invalid with line and column, no Vmfile, colours', async () => {
    const valid = await same(single, ['validate'])
    expect(valid.stdout).toBe('Vmfile is valid (machine: default)\n')
    expect(valid.stderr).toContain('Warning: box example/absent')
    await same(several, ['validate', '--json'])
    await same(empty, ['validate', path.join(several, 'Vmfile')])
    const bad = await same(invalid, ['validate'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/Vmfile:2:9 memory: must be a size/)
    expect(JSON.parse((await same(invalid, ['validate', '--json'])).stdout).status).toBe(1)
    await same(empty, ['validate'])
    await same(single, ['validate'], {FORCE_COLOR: '1', NO_COLOR: ''})
    await same(invalid, ['validate'], {FORCE_COLOR: '1', NO_COLOR: ''})
    // One argument too many: oclif's usage error both times.
    expect((await same(single, ['validate', 'a', 'b'])).code).toBe(2)
  }, 120_000)

  it('vm init: to stdout (full, minimal, a box and version, --json), to a file, over an existing Vmfile', async () => {
    expect((await same(empty, ['init', '--output', '-'])).stdout).toContain('box: vmfile/debian-12')
    await same(empty, ['init', 'vmfile/tiny', '-m', '-o', '-', '--box-version', '>= 1.0'])
    await same(empty, ['init', '--output=-', '--json'])
    const target = path.join(empty, 'Vmfile')
    const written = await same(empty, ['init', '--minimal'], {}, () => rmSync(target, {force: true}))
    expect(written.stdout).toContain(`Wrote ${target}`)
    expect(existsSync(target)).toBe(true)
    await same(empty, ['init', '--json', '-f'])
    const refused = await same(empty, ['init'])
    expect(refused.code).not.toBe(0)
    await same(empty, ['init', '--json'])
    rmSync(target, {force: true})
  }, 120_000)

  it('vm global-status: no machines, a machine and a stale entry, --json, --prune', async () => {
    const other = path.join(scratch, 'home-global')
    const index = path.join(other, 'data', 'machines.json')
    const env = {VM_HOME: other}
    expect((await same(empty, ['global-status'], env)).stdout).toBe('No machines on this host.\n')
    const listed = project('listed', 'box: vmfile/tiny\n')
    const paths = machinePaths(listed, 'default')
    mkdirSync(paths.dir, {recursive: true})
    writeFileSync(paths.record, '{not json')
    const write = () => {
      mkdirSync(path.dirname(index), {recursive: true})
      const machines = [
        {name: 'default', projectDir: listed},
        {name: 'db', projectDir: path.join(scratch, 'gone')},
      ]
      writeFileSync(index, `${JSON.stringify({machines})}\n`)
    }
    write()
    const listing = await same(empty, ['global-status'], env)
    expect(listing.stdout).toMatch(/^ID +NAME +STATE/)
    expect(listing.stdout).toContain('1 stale entry')
    expect(listing.stderr).toContain('Warning: [')
    await same(empty, ['global-status', '--json'], env)
    expect((await same(empty, ['global-status', '--prune'], env, write)).stdout).toContain('removed')
  }, 60_000)
})
