// The libvirt engine against a pretend remote libvirt host (test/helpers/libvirt-host.ts: its
// own libvirtd and sshd in a network namespace, reached over qemu+ssh://):
// - `vm up` of a halted machine to SSH-ready, against `virsh create` of the same domain XML (read
//   back from the domain vm defined) plus a lease poll and an SSH poll through the same jump host;
//   goal at most 1.10x;
// - the box upload into the remote pool (the engine's ensureUploaded: look-up, create, upload,
//   completion marker, over the engine's kept connection to the host: src/driver/libvirt/tunnel.ts)
//   against a bare `virsh vol-create-as` + `vol-upload` of the same file (virsh's own ssh
//   transport, a login per command); goal at most 1.05x;
// - a second machine of the same box on the same host uploads nothing (bytes and time reported).
// Needs root (namespaces) and the built tiny box.
import {spawnSync} from 'node:child_process'
import {copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {build} from 'esbuild'

import {median, root, saveResult, tinyBenchHome} from './measure.js'

const vmBin = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_LIBVIRT_RUNS ?? 3)

/** The TypeScript modules the bench calls directly, bundled for plain node. */
async function loadModules(dir) {
  await build({
    entryPoints: {
      host: path.join(root, 'test/helpers/libvirt-host.ts'),
      volumes: path.join(root, 'src/driver/libvirt/volumes.ts'),
      virsh: path.join(root, 'src/driver/libvirt/virsh.ts'),
    },
    outdir: dir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outExtension: {'.js': '.mjs'},
    banner: {js: "import {createRequire as __r} from 'node:module';const require=__r(import.meta.url);"},
    logLevel: 'warning',
  })
  const load = (name) => import(path.join(dir, `${name}.mjs`))
  return {host: await load('host'), volumes: await load('volumes'), virsh: await load('virsh')}
}

const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6

function must(argv, env, input) {
  const result = spawnSync(argv[0], argv.slice(1), {env, encoding: 'utf8', input})
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`)
  return result.stdout
}

function vm(args, cwd, env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [vmBin, ...args], {cwd, env, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`vm ${args.join(' ')} failed: ${result.stderr}`)
  return {ms: ms(start), stdout: result.stdout}
}

function sleep(milliseconds) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, milliseconds)
}

/** Boots the XML with virsh create, waits for the MAC's lease and then for SSH through the jump host. */
function baselineBoot(uri, xml, mac, network, sshArgs, env, file) {
  writeFileSync(file, xml)
  const before = must(['virsh', '-c', uri, 'net-dhcp-leases', network, '--mac', mac], env)
  const start = process.hrtime.bigint()
  must(['virsh', '-c', uri, 'create', file], env)
  let address
  for (;;) {
    const leases = must(['virsh', '-c', uri, 'net-dhcp-leases', network, '--mac', mac], env)
    const line = leases.split('\n').find((row) => row.includes(mac) && !before.includes(row.trim()))
    address = line === undefined ? undefined : /(\d+\.\d+\.\d+\.\d+)\//.exec(line)?.[1]
    if (address !== undefined) break
    sleep(500)
  }
  while (spawnSync('ssh', [...sshArgs, `vm@${address}`, 'true'], {env, timeout: 15_000}).status !== 0) sleep(500)
  return ms(start)
}

export default async function libvirt() {
  const work = mkdtempSync(path.join(tmpdir(), 'vm-bench-libvirt-'))
  const {host: hostModule, volumes, virsh: virshModule} = await loadModules(path.join(work, 'modules'))
  const lvHost = await hostModule.startLibvirtHost({name: 'lvbench', ssh: true})
  const client = hostModule.sshClient([lvHost])
  // The engine's virsh and ssh calls in this process go through the client's ssh config too.
  process.env.PATH = client.env.PATH
  const {home, project, env: benchEnv, boxDir} = tinyBenchHome('libvirt')
  const env = {...benchEnv, PATH: client.env.PATH}
  const uri = lvHost.sshUri
  const samples = {upload: [], bareUpload: [], secondUpload: [], up: [], baseline: [], firstUp: []}
  let secondUploadBytes = 0
  try {
    // Upload: the engine's upload of the box disk against bare virsh, interleaved, fresh volumes each time.
    const disk = path.join(boxDir, 'box.img')
    const size = statSync(disk).size
    const virsh = new virshModule.Virsh(uri)
    for (let run = 0; run < runs; run++) {
      let start = process.hrtime.bigint()
      await volumes.ensureUploaded(virsh, 'default', disk, `bench-vm-${run}.qcow2`, 'qcow2')
      samples.upload.push(ms(start))
      start = process.hrtime.bigint()
      must(['virsh', '-c', uri, 'vol-create-as', 'default', `bench-bare-${run}.qcow2`, String(size), '--format', 'qcow2'], env)
      must(['virsh', '-c', uri, 'vol-upload', '--pool', 'default', `bench-bare-${run}.qcow2`, disk], env)
      samples.bareUpload.push(ms(start))
      for (const volume of [`bench-vm-${run}.qcow2`, `bench-vm-${run}.qcow2.ready`, `bench-bare-${run}.qcow2`])
        must(['virsh', '-c', uri, 'vol-delete', '--pool', 'default', volume], env)
    }
    // A second upload of a volume the host holds: a look-up, no bytes.
    await volumes.ensureUploaded(virsh, 'default', disk, 'bench-again.qcow2', 'qcow2')
    const poolBytes = () => lvHost.virsh(['pool-info', '--bytes', 'default']).stdout.match(/Allocation:\s+(\d+)/)?.[1]
    const before = Number(poolBytes())
    let start = process.hrtime.bigint()
    await volumes.ensureUploaded(virsh, 'default', disk, 'bench-again.qcow2', 'qcow2')
    samples.secondUpload.push(ms(start))
    secondUploadBytes = Number(poolBytes()) - before

    // vm up of a halted machine against virsh create of its XML.
    writeFileSync(path.join(project, 'Vmfile'), `box: vmfile/tiny\nprovider: libvirt\ncpus: 1\nmemory: 512\nlibvirt: {uri: "${uri}"}\n`)
    samples.firstUp.push(vm(['up'], project, env).ms)
    const machineDir = path.join(project, '.vm/machines/default')
    const placement = JSON.parse(readFileSync(path.join(machineDir, 'libvirt.json'), 'utf8'))
    const record = JSON.parse(readFileSync(path.join(machineDir, 'machine.json'), 'utf8'))
    vm(['halt', '-f'], project, env)
    const xml = must(['virsh', '-c', uri, 'dumpxml', '--inactive', placement.domain], env)
      .replace(/<name>[^<]*<\/name>/, '<name>vm-bench-baseline</name>')
      .replace(/<uuid>[^<]*<\/uuid>/, '')
    const mac = /<mac address='([^']+)'/.exec(xml)[1]
    const key = path.join(work, 'key')
    copyFileSync(path.join(machineDir, 'id_ed25519'), key)
    const sshArgs = ['-J', lvHost.address, '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3']
    sshArgs.push('-o', `UserKnownHostsFile=${path.join(machineDir, 'known_hosts')}`, '-o', `HostKeyAlias=vm-${record.id}`)
    for (let run = 0; run < runs; run++) {
      samples.up.push(vm(['up'], project, env).ms)
      vm(['halt', '-f'], project, env)
      samples.baseline.push(baselineBoot(uri, xml, mac, placement.network, sshArgs, env, path.join(work, 'domain.xml')))
      must(['virsh', '-c', uri, 'destroy', 'vm-bench-baseline'], env)
    }
  } finally {
    spawnSync(process.execPath, [vmBin, 'destroy', '-f'], {cwd: project, env})
    await lvHost.stop()
    client.remove()
    rmSync(home, {recursive: true, force: true})
    rmSync(work, {recursive: true, force: true})
  }
  const m = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
  console.log(`vm up (halted machine, remote host) to SSH-ready: ${(m.up / 1000).toFixed(2)} s median of ${runs}`)
  console.log(`baseline (virsh create of the same XML + lease and SSH poll): ${(m.baseline / 1000).toFixed(2)} s`)
  console.log(`ratio vm up / baseline: ${(m.up / m.baseline).toFixed(2)}x (goal: at most 1.10x)`)
  // The pairs ran back to back: their ratios show how much of the spread is the machine's load.
  const pairs = samples.up.map((up, run) => `${(up / samples.baseline[run]).toFixed(2)}x`).join(', ')
  console.log(`  per run (vm up right before its baseline): ${pairs}`)
  console.log(`box upload (engine): ${m.upload.toFixed(0)} ms, bare vol-create-as + vol-upload: ${m.bareUpload.toFixed(0)} ms`)
  console.log(`ratio upload / bare: ${(m.upload / m.bareUpload).toFixed(2)}x (goal: at most 1.05x)`)
  console.log(`second machine of the same box: ${secondUploadBytes} bytes uploaded, ${m.secondUpload.toFixed(0)} ms (a look-up)`)
  console.log(`first vm up (box upload, volumes, network, key replacement): ${(m.firstUp / 1000).toFixed(2)} s`)
  saveResult('libvirt', {runs, samples, medians: m, secondUploadBytes})
}
