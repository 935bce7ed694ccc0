// Registry: boxes through Debian's docker-registry on 127.0.0.1, in the same run:
// 1. `vm box add oci://...` of the Debian box into an empty store, as a ratio to `curl` of the
//    same blobs plus `sha256sum` of them (median of interleaved runs; goal at most 1.1x), with
//    the median of the per-round ratios and the CPU both cases cost the machine (registry
//    included), which bound the ratio when other work shares the cores;
// 2. a new version whose disk differs by one file written into the guest filesystem (with
//    debugfs on the raw disk, then converted to qcow2 as boxes/lib/common.sh does: zstd
//    compressed clusters), pushed after the first: bytes sent as a fraction of the box size, and
//    bytes received by a pull of it next to the first version.
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {median, root, saveResult} from './measure.js'

const vm = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_RUNS ?? 5)

function builtDebianBox() {
  const dir = path.join(process.env.VM_BOXES_OUT ?? path.join(root, 'boxes/dist'), 'vmfile')
  const file = readdirSync(dir).find((name) => /^debian-12-[\d.]+-amd64\.box$/.test(name))
  if (file === undefined) throw new Error(`no built debian-12 box in ${dir}: run npm run boxes`)
  return path.join(dir, file)
}

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function startRegistry(dir) {
  const port = await freePort()
  const config = path.join(dir, 'config.yml')
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dir}/data`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  )
  const child = spawn('docker-registry', ['serve', config], {stdio: 'ignore'})
  for (let tries = 0; ; tries++) {
    const up = await globalThis.fetch(`http://127.0.0.1:${port}/v2/`).then(
      () => true,
      () => false,
    )
    if (up) break
    if (tries > 150) throw new Error('docker-registry did not start')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {host: `127.0.0.1:${port}`, pid: child.pid, stop: () => child.kill()}
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
function processCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Wall time (ms) of one run of a command, with the CPU seconds it and its children used, and what the registry used meanwhile. */
function timeWithCpu(argv, env, registryPid) {
  const registryBefore = processCpu(registryPid)
  const start = process.hrtime.bigint()
  const timed = existsSync('/usr/bin/time')
  const result = spawnSync(timed ? '/usr/bin/time' : argv[0], timed ? ['-f', '%U %S', ...argv] : argv.slice(1), {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`)
  const [user, system] = timed ? result.stderr.toString().trim().split('\n').at(-1).split(' ').map(Number) : [Number.NaN, 0]
  return {ms, cpu: user + system, registryCpu: processCpu(registryPid) - registryBefore}
}

function run(args, env) {
  return JSON.parse(execFileSync(process.execPath, [vm, ...args, '--json'], {env, maxBuffer: 1 << 26}).toString()).result
}

/** Writes one file into the ext4 filesystem of a raw disk (whole-disk, else its last partition), and checks it is there. */
function changeOneFile(raw, scratch) {
  const payload = path.join(scratch, 'changed.txt')
  const text = `changed by bench/registry at ${new Date().toISOString()}\n`
  writeFileSync(payload, text)
  const write = (device) => {
    execFileSync('debugfs', ['-w', '-R', `write ${payload} /etc/vm-bench-changed`, device], {stdio: 'ignore'})
    return execFileSync('debugfs', ['-R', 'cat /etc/vm-bench-changed', device], {stdio: ['ignore', 'pipe', 'ignore']}).toString() === text
  }
  const whole = spawnSync('debugfs', ['-R', 'stats', raw], {stdio: 'ignore'}).status === 0
  if (whole && write(raw)) return
  const table = JSON.parse(execFileSync('sfdisk', ['-J', raw]).toString()).partitiontable
  const offset = table.partitions.at(-1).start * (table.sectorsize ?? 512)
  const loop = execFileSync('losetup', ['--find', '--show', '-o', String(offset), raw])
    .toString()
    .trim()
  try {
    if (!write(loop)) throw new Error('debugfs did not write the file into the guest filesystem')
  } finally {
    execFileSync('losetup', ['-d', loop])
  }
}

export default async function registry() {
  const scratch = mkdtempSync(path.join(tmpdir(), 'vm-bench-registry-'))
  const reg = await startRegistry(scratch)
  const publisher = path.join(scratch, 'publisher')
  const boxDir = (version) => path.join(publisher, 'data/boxes/vmfile-VAGRANTSLASH-debian-12', version, 'amd64/libvirt')
  const env = (home) => ({...process.env, VM_HOME: home, DOCKER_CONFIG: path.join(scratch, 'docker'), VM_NO_BUILTIN_REGISTRY: '1'})
  try {
    mkdirSync(boxDir('1.0.0'), {recursive: true})
    execFileSync('tar', ['-xf', builtDebianBox(), '-C', boxDir('1.0.0')])
    const target = `oci://${reg.host}/bench/debian`
    const first = run(['box', 'push', 'vmfile/debian-12@1.0.0', target], env(publisher))

    // 1. Pull against curl + sha256sum of the same blobs.
    const manifest = JSON.parse(
      execFileSync('curl', [
        '-sf',
        '-H',
        'Accept: application/vnd.oci.image.manifest.v1+json',
        `http://${reg.host}/v2/bench/debian/manifests/1.0.0`,
      ]),
    )
    const blobs = [manifest.config, ...manifest.layers].map((layer) => layer.digest)
    const out = path.join(scratch, 'curl')
    const curlArgs = blobs.flatMap((digest, index) => [
      `http://${reg.host}/v2/bench/debian/blobs/${digest}`,
      '-o',
      path.join(out, String(index)),
    ])
    const baseline = [
      'bash',
      '-c',
      `set -e; rm -rf "${out}"; mkdir "${out}"; curl -sf ${curlArgs.map((arg) => `'${arg}'`).join(' ')}; cd "${out}"; sha256sum * > /dev/null`,
    ]
    const user = path.join(scratch, 'user')
    const ours = [process.execPath, vm, 'box', 'add', `${target}:1.0.0`]
    const cases = [
      {name: 'curl + sha256sum of the blobs', argv: baseline, reset: () => undefined},
      // An empty store and download cache; vm's code cache stays, as for anyone who ran vm before.
      {
        name: 'vm box add oci://',
        argv: ours,
        reset: () => {
          rmSync(path.join(user, 'data'), {recursive: true, force: true})
          rmSync(path.join(user, 'cache/downloads'), {recursive: true, force: true})
        },
      },
    ]
    const samples = cases.map(() => [])
    for (let round = 0; round <= runs; round++) {
      for (const [index, item] of cases.entries()) {
        item.reset()
        const sample = timeWithCpu(item.argv, env(user), reg.pid)
        if (round > 0) samples[index].push(sample)
      }
    }
    const rows = cases.map((item, index) => ({
      name: item.name,
      medianMs: median(samples[index].map((sample) => sample.ms)),
      cpuSeconds: median(samples[index].map((sample) => sample.cpu)),
      registryCpuSeconds: median(samples[index].map((sample) => sample.registryCpu)),
    }))
    const ratio = rows[1].medianMs / rows[0].medianMs
    // Each round runs the two cases back to back, so load from elsewhere on the machine hits
    // both alike: the median of the per-round ratios moves less with it than the ratio of medians.
    const pairedRatio = median(samples[1].map((sample, round) => sample.ms / samples[0][round].ms))
    // CPU seconds the whole pull costs the machine (the client with its children, and the
    // registry): what bounds the wall time when both cores are busy.
    const machineCpu = rows.map((row) => row.cpuSeconds + row.registryCpuSeconds)
    const cpuRatio = machineCpu[1] / machineCpu[0]
    console.log(
      `\npulling the Debian box (${(first.size / 1048576).toFixed(0)} MiB in ${first.blobs} blobs, ${(first.bytesSent / 1048576).toFixed(0)} MiB of blobs) from 127.0.0.1, median of ${runs}`,
    )
    for (const row of rows)
      console.log(
        `${row.name.padEnd(32)} ${row.medianMs.toFixed(0).padStart(8)} ms   ${(row.medianMs / rows[0].medianMs).toFixed(2)}x   CPU ${row.cpuSeconds.toFixed(2)} s, registry's ${row.registryCpuSeconds.toFixed(2)} s`,
      )
    console.log(`vm box add oci://: ${ratio.toFixed(2)}x curl + sha256sum (goal: at most 1.1x)`)
    console.log(
      `median of the ${runs} per-round ratios: ${pairedRatio.toFixed(2)}x; CPU of the machine (client + registry): ${machineCpu[1].toFixed(2)} s against ${machineCpu[0].toFixed(2)} s, ${cpuRatio.toFixed(2)}x`,
    )

    // 2. One file changed inside the guest, repackaged: what a second push sends and a pull receives.
    const raw = path.join(scratch, 'disk.raw')
    execFileSync('qemu-img', ['convert', '-q', '-O', 'raw', path.join(boxDir('1.0.0'), 'box.img'), raw])
    changeOneFile(raw, scratch)
    mkdirSync(boxDir('1.0.1'), {recursive: true})
    for (const file of readdirSync(boxDir('1.0.0')))
      if (file !== 'box.img') copyFileSync(path.join(boxDir('1.0.0'), file), path.join(boxDir('1.0.1'), file))
    execFileSync('qemu-img', [
      'convert',
      '-q',
      '-f',
      'raw',
      '-O',
      'qcow2',
      '-c',
      '-o',
      'compression_type=zstd,cluster_size=65536',
      raw,
      path.join(boxDir('1.0.1'), 'box.img'),
    ])
    rmSync(raw)
    const second = run(['box', 'push', 'vmfile/debian-12@1.0.1', target], env(publisher))
    const pulled = run(['box', 'add', `${target}:1.0.1`], env(user))
    const sentFraction = second.bytesSent / second.size
    const receivedFraction = pulled.received / second.size
    console.log(`\nversion 1.0.1 (one file written into the guest filesystem, disk recompressed):`)
    console.log(
      `push sent ${(second.bytesSent / 1048576).toFixed(1)} MiB of ${(second.size / 1048576).toFixed(0)} MiB: ${(sentFraction * 100).toFixed(1)}% of the box`,
    )
    console.log(
      `pull next to 1.0.0 received ${(pulled.received / 1048576).toFixed(1)} MiB: ${(receivedFraction * 100).toFixed(1)}% (reused ${(pulled.reused / 1048576).toFixed(0)} MiB)`,
    )
    saveResult('registry', {
      runs,
      rows,
      ratio,
      pairedRatio,
      cpuRatio,
      size: second.size,
      bytesSent: second.bytesSent,
      sentFraction,
      received: pulled.received,
      receivedFraction,
    })
  } finally {
    reg.stop()
    rmSync(scratch, {recursive: true, force: true})
  }
}
