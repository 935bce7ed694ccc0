// Timing helpers shared by the benchmarks.
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const root = fileURLToPath(new URL('..', import.meta.url))

/** Wall time of one run of a command, in milliseconds; throws when it fails. */
export function timeCommand(argv, options = {}) {
  const start = process.hrtime.bigint()
  const result = spawnSync(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe'], ...options})
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`)
  return elapsed
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * Runs every case `runs` times, interleaved (a, b, c, a, b, c ...) so that load on the machine
 * hits all of them alike, and returns the median per case.
 */
export function interleave(cases, runs, options) {
  const samples = cases.map(() => [])
  for (const item of cases) timeCommand(item.argv, options) // warm the page cache
  for (let run = 0; run < runs; run++) {
    for (const [index, item] of cases.entries()) samples[index].push(timeCommand(item.argv, options))
  }
  return cases.map((item, index) => ({name: item.name, medianMs: median(samples[index])}))
}

export function saveResult(name, data) {
  const dir = new URL('./results/', import.meta.url)
  mkdirSync(dir, {recursive: true})
  writeFileSync(new URL(`${name}.json`, dir), `${JSON.stringify(data, null, 2)}\n`)
}

/**
 * A temporary directory for a bench that boots machines: `vm-home` (VM_HOME) with the built
 * tiny box unpacked into its store (`boxDir`), and an empty `project`.
 */
export function tinyBenchHome(name) {
  const home = mkdtempSync(path.join(tmpdir(), `vm-bench-${name}-`))
  const project = path.join(home, 'project')
  const env = {...process.env, VM_HOME: path.join(home, 'vm-home'), NO_COLOR: '1'}
  const boxFile = readdirSync(path.join(root, 'boxes/dist/vmfile'))
    .filter((file) => file.startsWith('tiny-') && file.endsWith('.box'))
    .sort()
    .at(-1)
  if (boxFile === undefined) throw new Error('build the tiny box first: npm run boxes -- tiny')
  const boxDir = path.join(env.VM_HOME, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt')
  mkdirSync(boxDir, {recursive: true})
  execFileSync('tar', ['-xf', path.join(root, 'boxes/dist/vmfile', boxFile), '-C', boxDir])
  mkdirSync(project)
  return {home, project, env, boxDir}
}
