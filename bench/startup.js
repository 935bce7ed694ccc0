// Start-up: wall time of `vm --version`, `vm validate` and `vm init --output -`, each as a
// ratio to `node -e 0` measured in the same run (median of interleaved runs).
// Goal: vm validate at most 3x node -e 0.
import {copyFileSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {interleave, saveResult} from './measure.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const vm = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_RUNS ?? 21)

function measure(label, env) {
  const project = mkdtempSync(path.join(tmpdir(), 'vm-bench-'))
  copyFileSync(path.join(root, 'Vmfile.example'), path.join(project, 'Vmfile'))
  try {
    const rows = interleave(
      [
        {name: 'node -e 0', argv: [process.execPath, '-e', '0']},
        {name: 'vm --version', argv: [process.execPath, vm, '--version']},
        {name: 'vm validate', argv: [process.execPath, vm, 'validate']},
        {name: 'vm init --output -', argv: [process.execPath, vm, 'init', '--output', '-']},
      ],
      runs,
      {cwd: project, env: {...env, VM_HOME: path.join(project, '.home')}},
    )
    const baseline = rows[0].medianMs
    console.log(`\n${label} (median of ${runs} runs)`)
    console.log('command                 median ms   ratio to node -e 0')
    for (const row of rows) {
      console.log(`${row.name.padEnd(22)} ${row.medianMs.toFixed(1).padStart(10)}   ${(row.medianMs / baseline).toFixed(2)}x`)
    }
    return rows.map((row) => ({...row, ratio: row.medianMs / baseline}))
  } finally {
    rmSync(project, {recursive: true, force: true})
  }
}

export default async function startup() {
  const asGiven = measure('environment as given', process.env)
  // Node start-up itself depends on the environment (NODE_EXTRA_CA_CERTS alone adds tens of ms
  // to `node -e 0`); the ratio without such variables is the stricter one.
  const {NODE_EXTRA_CA_CERTS: _ca, NODE_OPTIONS: _options, ...clean} = process.env
  const bare = measure('without NODE_EXTRA_CA_CERTS / NODE_OPTIONS', clean)
  const validate = asGiven.find((row) => row.name === 'vm validate')
  console.log(`\nvm validate: ${validate.ratio.toFixed(2)}x node -e 0 (goal: at most 3x)`)
  saveResult('startup', {runs, asGiven, bare})
}
