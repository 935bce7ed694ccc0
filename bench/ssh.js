// vm ssh -c true against a bare `ssh -F CONFIG HOST true` with the options `vm ssh-config`
// prints, to the same tiny guest, interleaved in the same run. vm reuses one connection per
// machine (ControlMaster); the bare ssh makes a new one (key exchange) every time.
// Goal: ratio at most 1.0x. Start-up of vm itself (node + the CLI) is part of what is measured:
// `vm ssh -c` over a live connection takes the fast path (src/cli/ssh-fast-path.ts, no oclif);
// the same with --cwd (which the fast path leaves to the full command) is shown as information.
import {spawnSync} from 'node:child_process'
import {rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {median, root, saveResult, timeCommand, tinyBenchHome} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_SSH_RUNS ?? 15)

export default async function ssh() {
  const {home, project, env} = tinyBenchHome('ssh')
  // Users do not have it; it only makes node itself slower (see FIELD-NOTES).
  delete env.NODE_EXTRA_CA_CERTS
  writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\ncpus: 1\nmemory: 256\nsynced_folders: false\n')
  const samples = {vmSsh: [], bareSsh: [], node: [], vmSshFull: []}
  try {
    const up = spawnSync(process.execPath, [vmBin, 'up'], {cwd: project, env, encoding: 'utf8'})
    if (up.status !== 0) throw new Error(`vm up failed: ${up.stderr}`)
    const config = path.join(home, 'ssh_config')
    const printed = spawnSync(process.execPath, [vmBin, 'ssh-config', '--host', 'bench'], {cwd: project, env, encoding: 'utf8'})
    writeFileSync(config, printed.stdout)
    const cases = {
      vmSsh: [process.execPath, vmBin, 'ssh', '-c', 'true'],
      bareSsh: ['ssh', '-F', config, 'bench', 'true'],
      node: [process.execPath, '-e', '0'],
      vmSshFull: [process.execPath, vmBin, 'ssh', '--cwd', project, '-c', 'true'],
    }
    for (const argv of Object.values(cases)) timeCommand(argv, {cwd: project, env}) // warm up (and open vm's shared connection)
    for (let run = 0; run < runs; run++) {
      for (const [name, argv] of Object.entries(cases)) samples[name].push(timeCommand(argv, {cwd: project, env}))
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    rmSync(home, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  console.log(`vm ssh -c true: ${m.vmSsh.toFixed(0)} ms median of ${runs} (over the shared connection)`)
  console.log(`bare ssh -F <vm ssh-config> true: ${m.bareSsh.toFixed(0)} ms`)
  console.log(`node -e 0: ${m.node.toFixed(0)} ms (part of vm's time: start-up)`)
  console.log(`vm ssh --cwd DIR -c true: ${m.vmSshFull.toFixed(0)} ms (the full command, information only)`)
  const ratio = m.vmSsh / m.bareSsh
  console.log(`${ratio <= 1 ? 'ok  ' : 'FAIL'} ratio vm ssh / bare ssh: ${ratio.toFixed(2)}x (goal: at most 1.0x)`)
  saveResult('ssh', {runs, samples, medians: m})
}
