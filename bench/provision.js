// Provisioning uploads: `vm provision --provision-with NAME` of a `file` provisioner that
// uploads (a) a directory of 1,000 small files with mixed modes and (b) a directory holding
// one 100 MB file, against `tar -cf - . | ssh (the options of vm ssh-config) 'tar -xf -'` to
// the same guest in the same run. Interleaved runs, medians; the destination is removed
// before every run so both do the same work. Goal: at most 1.2x. Under TCG the guest takes
// ~30 s per 100 MB (SSH decryption), so the big case runs fewer times (BENCH_PROVISION_BIG_RUNS).
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {chmodSync, closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync} from 'node:fs'
import path from 'node:path'

import {median, root, saveResult, tinyBenchHome} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')
const runs = {small: Number(process.env.BENCH_PROVISION_RUNS ?? 5), big: Number(process.env.BENCH_PROVISION_BIG_RUNS ?? 3)}
const modes = [0o644, 0o600, 0o755, 0o640, 0o700]

function elapsedSince(start) {
  return Number(process.hrtime.bigint() - start) / 1e6
}

function check(result, what) {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}: ${result.stderr}`)
}

function vm(args, cwd, env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [vmBin, ...args], {cwd, env, encoding: 'utf8'})
  check(result, `vm ${args.join(' ')}`)
  return {ms: elapsedSince(start), stdout: result.stdout}
}

function makeSmallFiles(dir) {
  for (let index = 0; index < 1000; index++) {
    const sub = path.join(dir, `d${index % 10}`)
    mkdirSync(sub, {recursive: true})
    const file = path.join(sub, `file-${index}.txt`)
    writeFileSync(file, randomBytes(100 + (index % 400)).toString('base64'))
    chmodSync(file, modes[index % modes.length])
  }
}

function makeBigFile(dir) {
  mkdirSync(dir)
  const fd = openSync(path.join(dir, 'blob.bin'), 'w')
  for (let chunk = 0; chunk < 100; chunk++) writeSync(fd, randomBytes(1024 * 1024))
  closeSync(fd)
}

export default async function provision() {
  const {home, project, env} = tinyBenchHome('provision')
  const samples = {small: [], smallBaseline: [], big: [], bigBaseline: [], vmSshTrue: [], sshTrue: []}
  try {
    makeSmallFiles(path.join(project, 'small'))
    makeBigFile(path.join(project, 'big'))
    const destination = {small: '/home/vm/bench-small', big: '/home/vm/bench-big'}
    writeFileSync(
      path.join(project, 'Vmfile'),
      [
        'box: vmfile/tiny',
        'cpus: 2',
        'memory: 512',
        'synced_folders: false',
        'provision:',
        `  - {type: file, name: small, source: small, destination: ${destination.small}, run: never}`,
        `  - {type: file, name: big, source: big, destination: ${destination.big}, run: never}`,
        '',
      ].join('\n'),
    )
    vm(['up'], project, env)
    const sshConfig = path.join(home, 'ssh_config')
    writeFileSync(sshConfig, vm(['ssh-config'], project, env).stdout)
    const ssh = (command) => {
      const result = spawnSync('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', 'default', command], {encoding: 'utf8'})
      check(result, `ssh ${command}`)
      return result.stdout
    }
    const clean = () => ssh(`rm -rf ${destination.small} ${destination.big}`)
    const baseline = (name) => {
      const start = process.hrtime.bigint()
      const pipeline = `tar -C '${path.join(project, name)}' -cf - . | ssh -F '${sshConfig}' -o BatchMode=yes default 'mkdir -p ${destination[name]} && tar -xf - -C ${destination[name]}'`
      check(spawnSync('sh', ['-c', pipeline], {encoding: 'utf8'}), pipeline)
      return elapsedSince(start)
    }
    const ours = (name) => vm(['provision', '--provision-with', name], project, env).ms
    // Warm-up (page cache, the guest's file system) with the small files only: the big file
    // is fresh in the page cache, and one more round of it would cost a minute.
    clean()
    ours('small')
    clean()
    baseline('small')
    const stat = `cd ${destination.small} && find . -type f | xargs stat -c '%a %s %n' | sort`
    clean()
    ours('small')
    const oursModes = ssh(stat)
    clean()
    baseline('small')
    if (ssh(stat) !== oursModes) throw new Error('vm provision and tar | ssh left different modes or sizes')
    for (const name of ['small', 'big']) {
      for (let run = 0; run < runs[name]; run++) {
        for (const which of run % 2 === 0 ? ['ours', 'baseline'] : ['baseline', 'ours']) {
          clean()
          if (which === 'ours') samples[name].push(ours(name))
          else samples[`${name}Baseline`].push(baseline(name))
        }
      }
    }
    for (let run = 0; run < runs.small; run++) {
      samples.vmSshTrue.push(vm(['ssh', '-c', 'true'], project, env).ms)
      const start = process.hrtime.bigint()
      ssh('true')
      samples.sshTrue.push(elapsedSince(start))
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    rmSync(home, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  const line = (label, ours, base) =>
    console.log(
      `${label}: vm provision ${ours.toFixed(0)} ms, tar | ssh ${base.toFixed(0)} ms, ratio ${(ours / base).toFixed(2)}x, overhead ${(ours - base).toFixed(0)} ms`,
    )
  console.log('medians of interleaved runs (goal: at most 1.2x)')
  line(`1,000 small files (${runs.small} runs)`, m.small, m.smallBaseline)
  line(`one 100 MB file (${runs.big} runs)`, m.big, m.bigBaseline)
  console.log(
    `for scale: vm ssh -c true ${m.vmSshTrue.toFixed(0)} ms (Node and oclif start-up plus one SSH login), ssh true ${m.sshTrue.toFixed(0)} ms`,
  )
  saveResult('provision', {runs, samples, medians: m})
}
