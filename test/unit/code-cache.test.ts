import {spawnSync} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

// The built CLI compiles @oclif/core (dist/oclif-core.cjs) from a V8 code cache in vm's cache dir.
// VM_NO_FAST=1: status and validate run under oclif (bin/run.js's fast path loads no oclif).
const root = path.resolve(import.meta.dirname, '../..')
const home = mkdtempSync(path.join(tmpdir(), 'vm-code-cache-'))
const project = path.join(home, 'project')
const cacheDir = path.join(home, 'cache', 'code')

afterAll(() => rmSync(home, {recursive: true, force: true}))

function vm(nodeArgs: string[], args: string[]) {
  const result = spawnSync(process.execPath, [...nodeArgs, path.join(root, 'bin/run.js'), ...args], {
    cwd: project,
    encoding: 'utf8',
    env: {...process.env, VM_HOME: home, VM_CACHE_DIR: '', NO_COLOR: '1', VM_NO_FAST: '1'},
  })
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

/** The cache files of dist/oclif-core.cjs (yaml.cjs has its own, alike). */
const caches = (): string[] =>
  readdirSync(cacheDir)
    .filter((name) => name.startsWith('oclif-core.cjs-'))
    .sort()

describe('the V8 code cache of the built CLI', () => {
  it('is written by the first run, reused unchanged, rebuilt when unusable, and keyed by the Node flags', () => {
    mkdirSync(project)
    copyFileSync(path.join(root, 'Vmfile.example'), path.join(project, 'Vmfile'))

    const first = vm([], ['status', '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toBe('')
    const [cache] = caches()
    expect(readdirSync(cacheDir).filter((name) => /^yaml\.cjs-[0-9a-f]{24}\.v8$/.test(name))).toHaveLength(1)
    expect(caches()).toEqual([expect.stringMatching(/^oclif-core\.cjs-[0-9a-f]{24}\.v8$/)])
    // The CLI's own code (dist/app.cjs) has one cache per command: each holds what its command compiled.
    expect(readdirSync(cacheDir).filter((name) => name.startsWith('app.cjs'))).toEqual([
      expect.stringMatching(/^app\.cjs~status-[0-9a-f]{24}\.v8$/),
    ])
    const file = path.join(cacheDir, cache!)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700)
    const written = readFileSync(file)

    // A cache V8 accepts is read, not rewritten; the output is the same.
    const second = vm([], ['status', '--json'])
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toBe(first.stdout)
    expect(second.stderr).toBe('')
    expect(readFileSync(file).equals(written)).toBe(true)

    // A damaged cache (same size, other bytes) is refused by V8: the run works and rewrites it.
    writeFileSync(file, Buffer.alloc(written.length, 7))
    const damaged = vm([], ['validate', '--json'])
    expect(damaged.code, damaged.stderr).toBe(0)
    expect(JSON.parse(damaged.stdout)).toMatchObject({status: 0})
    expect(readFileSync(file).equals(Buffer.alloc(written.length, 7))).toBe(false)
    expect(caches()).toEqual([cache])

    // Other V8 flags make other code: another key, and the old cache is dropped.
    const flagged = vm(['--no-opt'], ['status', '--json'])
    expect(flagged.code, flagged.stderr).toBe(0)
    expect(flagged.stdout).toBe(first.stdout)
    expect(caches()).toHaveLength(1)
    expect(caches()[0]).not.toBe(cache)

    // Commands that oclif imports itself (help, unknown flags) work from the cache too.
    const help = vm([], ['help', 'status'])
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('USAGE')
    const unknown = vm([], ['status', '--jsn'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('--json')
    expect(
      readdirSync(cacheDir)
        .filter((name) => name.startsWith('app.cjs'))
        .map((name) => name.replace(/-[0-9a-f]{24}\.v8$/, ''))
        .sort(),
    ).toEqual(['app.cjs~help', 'app.cjs~status', 'app.cjs~validate'])
  }, 120_000)
})
