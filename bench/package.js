// vm package: wall time of `vm package` of a running tiny machine (guest prepared over SSH,
// powered off, disk exported flattened and compressed, box archive written) against a bare
// `qemu-img convert -c -O qcow2` of the same overlay, in the same run, right after each package
// (the overlay then holds exactly what was packaged). Median of BENCH_PACKAGE_RUNS runs.
// Goal: at most 1.1x. Also printed: the disk-and-archive part alone (export + archive) against
// the same baseline, since preparing and stopping the guest are work the baseline skips. The
// split: prepare (one SSH session: keys, host keys, machine-id, filesystems synced and read-only),
// halt (QEMU quit, or an ACPI power-off when the guest could not go read-only), export (qemu-img
// convert), archive (what is left to write once the disk is exported: the disk is last in the
// archive; all before it is compressed and written while the guest is prepared), and the rest
// (Node's start-up, the CLI's checks, staging the box's files).
import {spawnSync} from 'node:child_process'
import {rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {median, root, saveResult, timeCommand, tinyBenchHome} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_PACKAGE_RUNS ?? 3)

function vm(args, cwd, env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [vmBin, ...args], {cwd, env, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`vm ${args.join(' ')} failed: ${result.stderr}${result.stdout}`)
  return {ms: Number(process.hrtime.bigint() - start) / 1e6, stdout: result.stdout}
}

export default async function packageBench() {
  const {home, project, env} = tinyBenchHome('package')
  // Measured as users run it: without the CA bundle variable this machine sets (FIELD-NOTES).
  delete env.NODE_EXTRA_CA_CERTS
  writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 512\nsynced_folders: false\n')
  const overlay = path.join(project, '.vm/machines/default/disk0.qcow2')
  const output = path.join(home, 'package.box')
  const baselineOut = path.join(home, 'baseline.qcow2')
  const samples = {vmPackage: [], exportAndArchive: [], baseline: [], prepare: [], halt: [], export: [], archive: [], other: []}
  const haltMethods = new Set()
  try {
    for (let run = 0; run < runs; run++) {
      vm(['up'], project, env)
      const packaged = vm(['package', '--output', output, '--force', '--json'], project, env)
      const {timings, halt} = JSON.parse(packaged.stdout).result
      haltMethods.add(halt)
      samples.vmPackage.push(packaged.ms)
      samples.exportAndArchive.push(timings.export + timings.archive)
      for (const step of ['prepare', 'halt', 'export', 'archive']) samples[step].push(timings[step])
      samples.other.push(packaged.ms - timings.prepare - timings.halt - timings.export - timings.archive)
      rmSync(baselineOut, {force: true})
      samples.baseline.push(timeCommand(['qemu-img', 'convert', '-c', '-O', 'qcow2', overlay, baselineOut]))
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    rmSync(home, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`
  console.log(`vm package (tiny, running machine): ${s(m.vmPackage)} median of ${runs}`)
  console.log(
    `  prepare ${s(m.prepare)}, stop ${s(m.halt)} (${[...haltMethods].join(', ')}), export ${s(m.export)}, archive ${s(m.archive)}, outside these (Node, checks, staging) ${s(m.other)}`,
  )
  console.log(`baseline qemu-img convert -c of the same overlay: ${s(m.baseline)}`)
  console.log(`ratio vm package / baseline: ${(m.vmPackage / m.baseline).toFixed(2)}x (goal: at most 1.1x)`)
  console.log(`ratio export + archive / baseline: ${(m.exportAndArchive / m.baseline).toFixed(2)}x`)
  saveResult('package', {runs, samples, medians: m, halt: [...haltMethods]})
}
