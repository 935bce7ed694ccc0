// Box add: wall time of `vm box add URL` for a >= 1 GiB gzip box served from 127.0.0.1, as a
// ratio to standard tools doing the same work in the same run (download, sha256, gunzip, untar:
// curl | tee >(sha256sum) | tar -xz). Median of interleaved runs. Goal: at most 1.1x.
import {execFileSync, spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {median, saveResult} from './measure.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const vm = path.join(root, 'bin/run.js')
const runs = Number(process.env.BENCH_RUNS ?? 3)
const sizeMiB = Number(process.env.BENCH_BOX_MIB ?? 1024)
// The prepared box is kept between runs of the benchmark: making it takes a while.
const cache = process.env.BENCH_BOX_DIR ?? path.join(tmpdir(), 'vm-bench-box')

function prepareBox() {
  const box = path.join(cache, `random-${sizeMiB}.box`)
  if (existsSync(box) && existsSync(`${box}.sha256`)) return {box, sha256: readFileSync(`${box}.sha256`, 'utf8').trim()}
  mkdirSync(cache, {recursive: true})
  const work = mkdtempSync(path.join(cache, 'work-'))
  console.log(`preparing a ${sizeMiB} MiB box of random data in ${cache} (once)`)
  execFileSync('bash', ['-c', `head -c ${sizeMiB}M /dev/urandom > "${work}/raw.img"`])
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', `${work}/raw.img`, `${work}/box.img`])
  rmSync(`${work}/raw.img`)
  writeFileSync(
    `${work}/metadata.json`,
    JSON.stringify({provider: 'libvirt', format: 'qcow2', virtual_size: Math.ceil(sizeMiB / 1024), name: 'bench/random', version: '1.0.0'}),
  )
  execFileSync('bash', ['-c', `tar -c -C "${work}" metadata.json box.img | gzip -1 > "${box}.tmp"`])
  const sha256 = execFileSync('sha256sum', [`${box}.tmp`])
    .toString()
    .slice(0, 64)
  execFileSync('mv', [`${box}.tmp`, box])
  writeFileSync(`${box}.sha256`, sha256)
  rmSync(work, {recursive: true, force: true})
  return {box, sha256}
}

/** A static file server in its own process, so the timed commands never share its event loop. */
async function startServer(file) {
  const script = `
    import http from 'node:http'; import fs from 'node:fs'
    const file = process.argv[1]; const size = fs.statSync(file).size
    const server = http.createServer((req, res) => {
      res.writeHead(200, {'content-length': size, 'content-type': 'application/octet-stream'})
      fs.createReadStream(file, {highWaterMark: 1 << 20}).pipe(res)
    })
    server.listen(0, '127.0.0.1', () => console.log(server.address().port))`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, file], {stdio: ['ignore', 'pipe', 'inherit']})
  const port = await new Promise((resolve) => child.stdout.once('data', (data) => resolve(Number(String(data).trim()))))
  return {url: `http://127.0.0.1:${port}/box.box`, stop: () => child.kill()}
}

function timed(argv, env) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint()
    const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe'], env})
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6
      if (code === 0) resolve(ms)
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))
    })
  })
}

export default async function boxAdd() {
  const {box, sha256} = prepareBox()
  const server = await startServer(box)
  const scratch = mkdtempSync(path.join(cache, 'run-'))
  const home = path.join(scratch, 'home')
  const out = path.join(scratch, 'out')
  const env = {...process.env, VM_HOME: home, VM_NO_BUILTIN_REGISTRY: '1'}
  const baseline = [
    'bash',
    '-c',
    `set -o pipefail; curl -sf "${server.url}" | tee >(sha256sum > "${scratch}/sum") | tar -xz -C "${out}"; wait $!; grep -q ${sha256} "${scratch}/sum"`,
  ]
  const ours = [process.execPath, vm, 'box', 'add', server.url, '--name', 'bench/random', '--checksum-type', 'sha256', '--checksum', sha256]
  const cases = [
    {name: 'curl | tee >(sha256sum) | tar -xz', argv: baseline, reset: () => (rmSync(out, {recursive: true, force: true}), mkdirSync(out))},
    {name: 'vm box add', argv: ours, reset: () => rmSync(path.join(home, 'data', 'boxes'), {recursive: true, force: true})},
  ]
  const samples = cases.map(() => [])
  try {
    for (let run = 0; run <= runs; run++) {
      for (const [index, item] of cases.entries()) {
        item.reset()
        const ms = await timed(item.argv, env)
        if (run > 0) samples[index].push(ms) // run 0 warms the page cache
      }
    }
  } finally {
    server.stop()
    rmSync(scratch, {recursive: true, force: true})
  }
  const bytes = statSync(box).size
  const rows = cases.map((item, index) => ({name: item.name, medianMs: median(samples[index])}))
  const base = rows[0].medianMs
  console.log(`\nadding a ${(bytes / 1024 ** 3).toFixed(2)} GiB gzip box over HTTP on 127.0.0.1 (median of ${runs} runs)`)
  console.log('command                              median ms   MiB/s    ratio')
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(35)} ${row.medianMs.toFixed(0).padStart(10)} ${(bytes / 1048576 / (row.medianMs / 1000)).toFixed(0).padStart(7)}   ${(row.medianMs / base).toFixed(2)}x`,
    )
  }
  const ratio = rows[1].medianMs / base
  console.log(`\nvm box add: ${ratio.toFixed(2)}x the standard tools (goal: at most 1.1x)`)
  saveResult('box-add', {runs, bytes, rows, ratio})
}
