// vm up: from `vm up` to SSH-ready for the tiny box, against a baseline that boots the same
// box with the same QEMU flags by hand (read back from the QEMU vm started) and polls SSH
// with the same key. Also `vm ssh -c true` against a bare `ssh ... true` to the same guest.
// Goal: vm's overhead at most 10% (or 1 s).
import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {median, root, saveResult, tinyBenchHome} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_UP_RUNS ?? 3)

function vm(args, cwd, env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [vmBin, ...args], {cwd, env, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`vm ${args.join(' ')} failed: ${result.stderr}`)
  return {ms: Number(process.hrtime.bigint() - start) / 1e6, stdout: result.stdout}
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function sshOk(key, port, knownHosts) {
  const args = ['-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3', '-o', 'StrictHostKeyChecking=no']
  args.push('-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'LogLevel=ERROR', '-p', String(port), 'vm@127.0.0.1', 'true')
  return spawnSync('ssh', args, {timeout: 8000}).status === 0
}

/** Boots with QEMU directly, polls SSH like a careful script would, returns ms to SSH-ready. */
function baselineBoot(qemuArgs, boxImg, dir, key, port) {
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(dir, {recursive: true})
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', boxImg, path.join(dir, 'disk.qcow2')])
  const args = qemuArgs.map((arg) =>
    arg
      .replace(/file=[^,]*disk0\.qcow2/, `file=${path.join(dir, 'disk.qcow2')}`)
      .replace(/^file:.*serial\.log$/, `file:${path.join(dir, 'serial.log')}`)
      .replace(/^\/.*qemu\.pid$/, path.join(dir, 'qemu.pid'))
      .replace(/^unix:.*\.qmp,/, `unix:${path.join(dir, 'qmp.sock')},`)
      .replace(/hostfwd=tcp:127\.0\.0\.1:\d+-:22/, `hostfwd=tcp:127.0.0.1:${port}-:22`),
  )
  const start = process.hrtime.bigint()
  execFileSync(qemuArgs.binary, args)
  while (!sshOk(key, port, '/dev/null')) sleep(500)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  const pid = Number(readFileSync(path.join(dir, 'qemu.pid'), 'utf8'))
  return {ms, pid}
}

export default async function up() {
  const {home, project, env, boxDir} = tinyBenchHome('up')
  writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 512\n')
  const key = path.join(home, 'insecure')
  copyFileSync(path.join(root, 'boxes/keys/vmfile_insecure_key'), key)
  chmodSync(key, 0o600)
  const samples = {firstUp: [], up: [], baseline: [], vmSsh: [], bareSsh: []}
  const basePids = []
  try {
    // First up: creates the overlay and replaces the insecure key (two extra SSH logins).
    samples.firstUp.push(vm(['up'], project, env).ms)
    const machineDir = path.join(project, '.vm/machines/default')
    const pid = Number(readFileSync(path.join(machineDir, 'qemu.pid'), 'utf8'))
    const qemuArgs = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    const binary = qemuArgs.shift()
    qemuArgs.binary = binary
    for (let i = 0; i < 10; i++) {
      samples.vmSsh.push(vm(['ssh', '-c', 'true'], project, env).ms)
      const record = JSON.parse(readFileSync(path.join(machineDir, 'machine.json'), 'utf8'))
      const start = process.hrtime.bigint()
      const args = [
        '-i',
        path.join(machineDir, 'id_ed25519'),
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        `UserKnownHostsFile=${path.join(machineDir, 'known_hosts')}`,
      ]
      args.push('-o', `HostKeyAlias=vm-${record.id}`, '-p', String(record.ssh.port), 'vm@127.0.0.1', 'true')
      execFileSync('ssh', args)
      samples.bareSsh.push(Number(process.hrtime.bigint() - start) / 1e6)
    }
    vm(['halt', '-f'], project, env)
    for (let run = 0; run < runs; run++) {
      samples.up.push(vm(['up'], project, env).ms)
      vm(['halt', '-f'], project, env)
      const base = baselineBoot(qemuArgs, path.join(boxDir, 'box.img'), path.join(home, 'baseline'), key, 2399 - run)
      samples.baseline.push(base.ms)
      basePids.push(base.pid)
      process.kill(base.pid, 'SIGKILL')
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    for (const pid of basePids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(home, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  console.log(`vm up (halted machine) to SSH-ready: ${(m.up / 1000).toFixed(2)} s median of ${runs}`)
  console.log(`baseline (same QEMU flags by hand + SSH poll): ${(m.baseline / 1000).toFixed(2)} s`)
  console.log(
    `ratio vm up / baseline: ${(m.up / m.baseline).toFixed(2)}x, overhead ${((m.up - m.baseline) / 1000).toFixed(2)} s (goal: at most 10% or 1 s)`,
  )
  console.log(`first vm up (overlay + key replacement): ${(m.firstUp / 1000).toFixed(2)} s`)
  console.log(
    `vm ssh -c true: ${m.vmSsh.toFixed(0)} ms, bare ssh true: ${m.bareSsh.toFixed(0)} ms, ratio ${(m.vmSsh / m.bareSsh).toFixed(2)}x`,
  )
  saveResult('up', {runs, samples, medians: m})
}
