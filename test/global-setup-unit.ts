import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, statSync} from 'node:fs'
import path from 'node:path'

import {repoRoot} from './helpers/built-boxes.js'

/**
 * Global setup of the unit project: some unit tests run the built CLI (bin/run.js loads
 * dist/commands.js) as a subprocess, and the in-process command tests need the oclif manifest.
 * Before any worker starts, this rebuilds the bundle and the manifest when they are missing or
 * older than a source file, so those tests never run yesterday's code. It skips the type check
 * of `npm run build` (a type error elsewhere must not stop every unit test) and leaves the
 * shipped schema/vmfile.schema.json alone (a unit test checks that it is up to date).
 */
const outputs = ['dist/commands.js', 'oclif.manifest.json']
const inputs = ['src', 'scripts', 'package.json']

function newestMtime(entry: string): number {
  const stat = statSync(entry)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const name of readdirSync(entry)) newest = Math.max(newest, newestMtime(path.join(entry, name)))
  return newest
}

function stale(): string | undefined {
  const missing = outputs.find((file) => !existsSync(path.join(repoRoot, file)))
  if (missing !== undefined) return `${missing} is missing`
  const built = Math.min(...outputs.map((file) => statSync(path.join(repoRoot, file)).mtimeMs))
  const source = Math.max(...inputs.map((entry) => newestMtime(path.join(repoRoot, entry))))
  return source > built ? 'the sources changed since the last build' : undefined
}

export default function setup(): void {
  const reason = stale()
  if (reason === undefined) return
  process.stderr.write(`[unit setup] building the CLI into dist/ (${reason})\n`)
  const started = performance.now()
  for (const step of [
    ['node', 'scripts/bundle.js'],
    [path.join(repoRoot, 'node_modules/.bin/oclif'), 'manifest'],
  ]) {
    // No look-up of a newer oclif on the registry: a test run stays offline.
    const env = {...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true', VM_COMMAND_CLASSES: '1'}
    const result = spawnSync(step[0]!, step.slice(1), {cwd: repoRoot, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
    if (result.status !== 0)
      throw new Error(`${step.join(' ')} failed (the unit tests run the built CLI):\n${result.stdout}${result.stderr}`)
  }
  process.stderr.write(`[unit setup] built in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}
