// vm snapshot / suspend: for the tiny and the Debian box, `vm resume` of a suspended machine and
// `vm snapshot restore` of a live snapshot (both to SSH-ready, clock set, folders mounted),
// against a cold `vm up` of the same halted machine in the same run.
// Goals: resume at most 0.25x a cold boot for tiny, at most 0.10x for Debian.
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {median, root, saveResult} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')

const BOXES = [
  {box: 'tiny', vmfile: 'box: vmfile/tiny\ncpus: 1\nmemory: 512\n', goal: 0.25, runs: Number(process.env.BENCH_SNAPSHOT_RUNS ?? 3)},
  {
    box: 'debian-12',
    vmfile: 'box: vmfile/debian-12\ncpus: 2\nmemory: 1G\n',
    goal: 0.1,
    runs: Number(process.env.BENCH_SNAPSHOT_DEBIAN_RUNS ?? 2),
  },
]

function vm(args, cwd, env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [vmBin, ...args], {cwd, env, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`vm ${args.join(' ')} failed: ${result.stderr}`)
  return Number(process.hrtime.bigint() - start) / 1e6
}

/** A temporary VM_HOME with the built box `name` in its store, and a project with `vmfile`. */
function benchHome(name, vmfile) {
  const home = mkdtempSync(path.join(tmpdir(), `vm-bench-snapshot-${name}-`))
  const project = path.join(home, 'project')
  // NODE_EXTRA_CA_CERTS slows every node start here; users do not have it.
  const {NODE_EXTRA_CA_CERTS: _unused, ...rest} = process.env
  const env = {...rest, VM_HOME: path.join(home, 'vm-home'), NO_COLOR: '1'}
  const boxFile = readdirSync(path.join(root, 'boxes/dist/vmfile'))
    .filter((file) => file.startsWith(`${name}-`) && file.endsWith('.box'))
    .sort()
    .at(-1)
  if (boxFile === undefined) throw new Error(`build the ${name} box first: npm run boxes -- ${name}`)
  const boxDir = path.join(env.VM_HOME, `data/boxes/vmfile-VAGRANTSLASH-${name}/1.0.0/amd64/libvirt`)
  mkdirSync(boxDir, {recursive: true})
  execFileSync('tar', ['-xf', path.join(root, 'boxes/dist/vmfile', boxFile), '-C', boxDir])
  mkdirSync(project)
  writeFileSync(path.join(project, 'Vmfile'), vmfile)
  return {home, project, env}
}

function benchBox({box, vmfile, goal, runs}) {
  const {home, project, env} = benchHome(box, vmfile)
  const samples = {coldUp: [], resume: [], restore: [], suspend: [], save: [], stateMiB: []}
  try {
    vm(['up'], project, env) // creates the machine and replaces its key: not measured
    for (let run = 0; run < runs; run++) {
      vm(['halt'], project, env)
      samples.coldUp.push(vm(['up'], project, env))
      samples.suspend.push(vm(['suspend'], project, env))
      samples.stateMiB.push(statSync(path.join(project, '.vm/machines/default/saved-state')).size / 1024 ** 2)
      samples.resume.push(vm(['resume'], project, env))
      samples.save.push(vm(['snapshot', 'save', `bench${run}`], project, env))
      samples.restore.push(vm(['snapshot', 'restore', `bench${run}`], project, env))
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    rmSync(home, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`
  console.log(`${box}: cold vm up (halted machine) to SSH-ready: ${s(m.coldUp)} median of ${runs}`)
  console.log(`${box}: vm resume to SSH-ready: ${s(m.resume)}, ratio ${(m.resume / m.coldUp).toFixed(2)}x (goal: at most ${goal}x)`)
  console.log(
    `${box}: vm snapshot restore (live) to SSH-ready: ${s(m.restore)}, ratio ${(m.restore / m.coldUp).toFixed(2)}x (goal: at most ${goal}x)`,
  )
  console.log(`${box}: vm suspend ${s(m.suspend)} (saved state ${m.stateMiB.toFixed(1)} MiB), vm snapshot save (live) ${s(m.save)}`)
  return {runs, samples, medians: m, ratios: {resume: m.resume / m.coldUp, restore: m.restore / m.coldUp}, goal}
}

export default async function snapshot() {
  const only = process.env.BENCH_SNAPSHOT_BOXES?.split(',')
  const results = {}
  for (const entry of BOXES) if (only === undefined || only.includes(entry.box)) results[entry.box] = benchBox(entry)
  saveResult('snapshot', results)
}
