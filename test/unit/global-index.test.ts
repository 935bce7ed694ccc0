import {spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {build} from 'esbuild'
import {afterEach, describe, expect, it, vi} from 'vitest'

import {addToIndex, listIndex, removeFromIndex} from '../../src/state/global-index.js'

const root = path.resolve(import.meta.dirname, '../..')

/** global-index.ts bundled into one .mjs, so plain node child processes can update the index. */
async function bundledIndex(dir: string): Promise<string> {
  const out = path.join(dir, 'global-index.mjs')
  await build({
    entryPoints: [path.join(root, 'src/state/global-index.ts')],
    outfile: out,
    bundle: true,
    format: 'esm',
    platform: 'node',
    logLevel: 'error',
  })
  return out
}

function runNode(script: string, env: NodeJS.ProcessEnv): Promise<{code: number | null; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: {...process.env, ...env},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('close', (code) => resolve({code, stderr}))
  })
}

function indexIds(home: string): string[] {
  const data = JSON.parse(readFileSync(path.join(home, 'data/machines.json'), 'utf8')) as {machines: Array<{id: string}>}
  return data.machines.map((entry) => entry.id).sort()
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('the global machine index across processes', () => {
  it('keeps every entry when several vm processes add machines at the same time', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-procs-'))
    const module = await bundledIndex(home)
    const processes = 6
    const perProcess = 8
    const script = (worker: number) => `
      const {addToIndex} = await import(${JSON.stringify(module)})
      for (let i = 0; i < ${perProcess}; i++) {
        const id = 'w${worker}-' + i
        await addToIndex({id, name: id, projectDir: '/projects/' + id})
      }
    `
    const results = await Promise.all(Array.from({length: processes}, (_, worker) => runNode(script(worker), {VM_HOME: home})))
    for (const result of results) expect(result.code, result.stderr).toBe(0)
    const expected = Array.from({length: processes}, (_, worker) => Array.from({length: perProcess}, (_, i) => `w${worker}-${i}`)).flat()
    expect(indexIds(home)).toEqual(expected.sort())
    // No temp file or lock is left behind.
    expect(readdirSync(path.join(home, 'data'))).toEqual(['machines.json'])
  })

  it('keeps every entry when processes add and remove at the same time', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-procs-'))
    const module = await bundledIndex(home)
    const env = {VM_HOME: home}
    for (let i = 0; i < 10; i++) await addToIndex({id: `old-${i}`, name: `old-${i}`, projectDir: `/p/old-${i}`}, env)
    const adder = (worker: number) => `
      const {addToIndex} = await import(${JSON.stringify(module)})
      for (let i = 0; i < 10; i++) await addToIndex({id: 'new${worker}-' + i, name: 'n', projectDir: '/p/new${worker}-' + i})
    `
    const remover = `
      const {removeFromIndex} = await import(${JSON.stringify(module)})
      for (let i = 0; i < 10; i += 2) await removeFromIndex('old-' + i)
    `
    const results = await Promise.all([runNode(adder(1), env), runNode(adder(2), env), runNode(remover, env)])
    for (const result of results) expect(result.code, result.stderr).toBe(0)
    const ids = indexIds(home)
    expect(ids.filter((id) => id.startsWith('new')).length).toBe(20)
    expect(ids.filter((id) => id.startsWith('old'))).toEqual(['old-1', 'old-3', 'old-5', 'old-7', 'old-9'])
  })
})

describe('a corrupt global machine index', () => {
  it('is reported, not read as empty in silence', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-corrupt-'))
    mkdirSync(path.join(home, 'data'), {recursive: true})
    writeFileSync(path.join(home, 'data/machines.json'), '{"machines": [{"id": "a", "name": "web", "projectDir": "/p"},')
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    await listIndex({}, {VM_HOME: home})
    const said = stderr.mock.calls.map((call) => String(call[0])).join('')
    expect(said).toMatch(/Warning: .*machines\.json.*(corrupt|unreadable|not valid)/)
  })

  it('is kept aside, with a warning naming where, before a new index replaces it', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-corrupt-'))
    const env = {VM_HOME: home}
    const file = path.join(home, 'data/machines.json')
    mkdirSync(path.dirname(file), {recursive: true})
    const garbage = '{"machines": [{"id": "a", "name": "web", "projectDir": "/p"}, \u0000\u0000'
    writeFileSync(file, garbage)
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    await addToIndex({id: 'b', name: 'db', projectDir: '/q'}, env)
    const aside = readdirSync(path.dirname(file)).filter((name) => name.startsWith('machines.json.corrupt-'))
    expect(aside.length).toBe(1)
    expect(readFileSync(path.join(path.dirname(file), aside[0]!), 'utf8')).toBe(garbage)
    expect(indexIds(home)).toEqual(['b'])
    const said = stderr.mock.calls.map((call) => String(call[0])).join('')
    expect(said).toContain(aside[0])
    // The next update finds a sound index and says nothing more.
    stderr.mockClear()
    await removeFromIndex('b', env)
    expect(stderr.mock.calls.length).toBe(0)
    expect(existsSync(file)).toBe(true)
  })

  it('an index of the wrong shape counts as corrupt too', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-corrupt-'))
    mkdirSync(path.join(home, 'data'), {recursive: true})
    writeFileSync(path.join(home, 'data/machines.json'), '{"machines": {"id": "a"}}')
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    await addToIndex({id: 'b', name: 'db', projectDir: '/q'}, {VM_HOME: home})
    expect(readdirSync(path.join(home, 'data')).some((name) => name.startsWith('machines.json.corrupt-'))).toBe(true)
    expect(stderr.mock.calls.map((call) => String(call[0])).join('')).toMatch(/Warning: /)
  })
})
