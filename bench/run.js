#!/usr/bin/env node
// Runs benchmarks: `npm run bench` runs all, `npm run bench -- startup` one. Each bench
// compares against a baseline measured in the same run and prints ratios, not absolute times.
import {readdirSync} from 'node:fs'

const all = readdirSync(new URL('.', import.meta.url))
  .filter((file) => file.endsWith('.js') && file !== 'run.js' && file !== 'measure.js')
  .map((file) => file.slice(0, -3))
const chosen = process.argv.slice(2)
const unknown = chosen.filter((name) => !all.includes(name))
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; have: ${all.join(', ')}`)
  process.exit(2)
}
for (const name of chosen.length > 0 ? chosen : all) {
  console.log(`\n# bench/${name}`)
  const bench = await import(`./${name}.js`)
  await bench.default()
}
