import {spawn, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createConnection, createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {buildQemuArgs} from '../../src/driver/qemu/args.js'
import type {HostFacts, MachineSpec} from '../../src/driver/qemu/spec.js'
import {boxesCatalogDir} from '../helpers/built-boxes.js'
import {builtBox, root} from '../helpers/vm-cli.js'

/**
 * End-to-end tests of the boxes made by boxes/build.sh: each box boots under QEMU (TCG) both
 * from the kernel, initramfs and command line shipped in its archive and from its own disk,
 * and accepts the insecure key over SSH with passwordless sudo; the catalogs' checksums match.
 * QEMU's command line comes from vm's argv builder (buildQemuArgs), so these boots also prove
 * what it emits: daemonized with a pidfile, QMP and a serial log, qboot for a vmlinux.
 */

const outDir = boxesCatalogDir()

interface Provider {
  name: string
  url: string
  checksum_type: string
  checksum: string
  architecture: string
  default_architecture: boolean
}

interface Catalog {
  name: string
  description: string
  versions: {version: string; providers: Provider[]}[]
}

interface Metadata {
  provider: string
  format: string
  virtual_size: number
  architecture: string
  name: string
  version: string
  kernel: string
  initrd: string
  cmdline: string
  firmware?: string
  ssh_user: string
}

const boxes = [
  {name: 'tiny', sshTimeoutMs: 60_000},
  {name: 'debian-12', sshTimeoutMs: 180_000},
]

const QBOOT_ROM = '/usr/share/qemu/qboot.rom'
const host: HostFacts = {qemuBinary: 'qemu-system-x86_64', qbootRom: existsSync(QBOOT_ROM) ? QBOOT_ROM : undefined}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const seconds = (ms: number) => (ms / 1000).toFixed(1)

function catalogPath(name: string): string {
  return path.join(outDir, `${name}.json`)
}

function readCatalog(name: string): Catalog {
  return JSON.parse(readFileSync(catalogPath(name), 'utf8')) as Catalog
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject)
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

function run(command: string, args: string[], timeoutMs: number): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stdout, stderr})
    })
  })
}

/**
 * Whether the QEMU we started still runs: the PID from its pidfile names a live process (not a
 * zombie left for a container's init to reap) with the process name -name gave it.
 */
function qemuRunning(pid: number, processName: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    return comm === processName && stat[stat.lastIndexOf(')') + 2] !== 'Z'
  } catch {
    return false
  }
}

async function waitGone(pid: number, processName: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (qemuRunning(pid, processName)) {
    if (Date.now() > deadline) return false
    await sleep(200)
  }
  return true
}

/** Sends one QMP command (after the capabilities handshake) to QEMU's monitor socket. */
function qmp(socket: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const connection = createConnection(socket)
    let buffer = ''
    let step = 0
    const timer = setTimeout(() => {
      connection.destroy()
      reject(new Error(`QMP ${command}: no answer`))
    }, 10_000)
    connection.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    connection.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let newline: number
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline)) as {QMP?: unknown; return?: unknown; error?: {desc: string}}
        buffer = buffer.slice(newline + 1)
        if (message.error) {
          clearTimeout(timer)
          connection.destroy()
          reject(new Error(`QMP ${command}: ${message.error.desc}`))
        } else if (step === 0 && message.QMP) {
          step = 1
          connection.write(JSON.stringify({execute: 'qmp_capabilities'}) + '\n')
        } else if (step === 1 && message.return !== undefined) {
          step = 2
          connection.write(JSON.stringify({execute: command}) + '\n')
        } else if (step === 2 && message.return !== undefined) {
          clearTimeout(timer)
          connection.end()
          resolve()
        }
      }
    })
  })
}

for (const box of boxes) {
  describe(`${box.name} box`, () => {
    let work: string
    let boxDir: string
    let key: string
    let metadata: Metadata
    const machines: Array<{pid: number; processName: string}> = []

    beforeAll(() => {
      const file = builtBox(box.name)
      work = mkdtempSync(path.join(tmpdir(), `vm-e2e-${box.name}-`))
      boxDir = path.join(work, 'box,1')
      const untar = spawnSync('bash', ['-c', 'mkdir -p "$2" && tar -xzf "$1" -C "$2"', 'untar', file, boxDir])
      if (untar.status !== 0) throw new Error(`cannot unpack ${file}: ${untar.stderr}`)
      metadata = JSON.parse(readFileSync(path.join(boxDir, 'metadata.json'), 'utf8')) as Metadata
      // git does not keep file modes; ssh refuses a private key others can read.
      key = path.join(work, 'insecure_key')
      writeFileSync(key, readFileSync(path.join(root, 'boxes/keys/vmfile_insecure_key')), {mode: 0o600})
    })

    afterAll(async () => {
      for (const {pid, processName} of machines) {
        if (qemuRunning(pid, processName)) {
          process.kill(pid, 'SIGKILL')
          await waitGone(pid, processName, 5_000)
        }
      }
      if (work) rmSync(work, {recursive: true, force: true})
    })

    it('has the metadata of a libvirt box with direct kernel boot', () => {
      expect(metadata).toMatchObject({provider: 'libvirt', format: 'qcow2', architecture: 'amd64', ssh_user: 'vm'})
      expect(metadata.name).toBe(`vmfile/${box.name}`)
      expect(Number.isInteger(metadata.virtual_size)).toBe(true)
      for (const file of [metadata.kernel, metadata.initrd, 'box.img']) expect(existsSync(path.join(boxDir, file))).toBe(true)
      expect(metadata.cmdline).toMatch(/root=/)
    })

    for (const mode of ['direct', 'disk'] as const) {
      it(`boots ${mode === 'direct' ? 'from its kernel and initramfs' : 'from its disk'} to SSH with passwordless sudo`, async () => {
        // A comma in the directory of every file QEMU is given: the argv must keep each path whole.
        const dir = mkdtempSync(path.join(work, `${mode},`))
        const overlay = path.join(dir, 'overlay.qcow2')
        const created = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(boxDir, 'box.img'), overlay])
        expect(created.status, String(created.stderr)).toBe(0)

        const port = await freePort()
        // The machine definition comes from vm's own argv builder, as vm up would start it.
        const spec: MachineSpec = {
          name: `${box.name}-${mode}`,
          cpus: 2,
          memoryMiB: 512,
          accel: 'tcg',
          disks: [{path: overlay, format: 'qcow2'}],
          kernel:
            mode === 'direct'
              ? {
                  kernel: path.join(boxDir, metadata.kernel),
                  initrd: path.join(boxDir, metadata.initrd),
                  cmdline: metadata.cmdline,
                  firmware: metadata.firmware,
                }
              : undefined,
          nics: [
            {kind: 'user', mac: '52:54:00:12:34:56', forwards: [{protocol: 'tcp', hostIp: '127.0.0.1', hostPort: port, guestPort: 22}]},
          ],
          shares: [],
          files: {pidfile: path.join(dir, 'qemu.pid'), qmpSocket: path.join(dir, 'qmp.sock'), serialLog: path.join(dir, 'serial.log')},
        }
        const {serialLog: serial, qmpSocket: monitor} = spec.files
        const processName = `vm-${spec.name}`.slice(0, 15)
        const args = buildQemuArgs(spec, host)

        // QEMU daemonizes: its first process exits once the machine is set up, with any error on stderr.
        const start = Date.now()
        const started = await run(host.qemuBinary, args, 60_000)
        expect(started.code, `QEMU did not start: ${started.stderr}`).toBe(0)
        const pid = Number(readFileSync(spec.files.pidfile, 'utf8').trim())
        expect(qemuRunning(pid, processName), `no QEMU named ${processName} at PID ${pid}`).toBe(true)
        machines.push({pid, processName})

        const ssh = (command: string) =>
          run(
            'ssh',
            [
              ...['-i', key, '-p', String(port), '-o', 'ConnectTimeout=2', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'],
              ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
              `${metadata.ssh_user}@127.0.0.1`,
              command,
            ],
            20_000,
          )

        const serialLog = () => (existsSync(serial) ? readFileSync(serial, 'utf8').slice(-3000) : '')
        let ready = false
        while (!ready && Date.now() - start < box.sshTimeoutMs) {
          if (!qemuRunning(pid, processName)) throw new Error(`QEMU exited; serial console:\n${serialLog()}`)
          const result = await ssh('sudo -n id -u')
          ready = result.code === 0 && result.stdout.trim() === '0'
          if (!ready) await sleep(500)
        }
        expect(ready, `no SSH within ${seconds(box.sshTimeoutMs)} s; serial console:\n${serialLog()}`).toBe(true)
        console.log(`${box.name} ${mode}: SSH ready in ${seconds(Date.now() - start)} s`)

        expect((await ssh('exit 3')).code).toBe(3)

        // Clean power off through the ACPI power button.
        await qmp(monitor, 'system_powerdown')
        const off = await waitGone(pid, processName, 90_000)
        if (!off) process.kill(pid, 'SIGKILL')
        expect(off, `no power off after system_powerdown; serial console:\n${serialLog()}`).toBe(true)
      })
    }
  })
}

describe('box catalogs', () => {
  for (const box of boxes) {
    it(`${box.name}: the catalog's sha256 checksums match the .box archives`, async () => {
      builtBox(box.name)
      const catalog = readCatalog(box.name)
      expect(catalog.name).toBe(`vmfile/${box.name}`)
      expect(catalog.versions.length).toBeGreaterThan(0)
      for (const version of catalog.versions) {
        expect(version.version).toMatch(/^\d+\.\d+\.\d+$/)
        for (const provider of version.providers) {
          expect(provider).toMatchObject({name: 'libvirt', checksum_type: 'sha256', architecture: 'amd64'})
          expect(provider.url).toBe(`${box.name}-${version.version}-amd64.box`)
          expect(await sha256(path.join(outDir, provider.url))).toBe(provider.checksum)
        }
      }
    })
  }
})
