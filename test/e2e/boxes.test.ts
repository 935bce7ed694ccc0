import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createConnection, createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {boxesCatalogDir} from '../helpers/built-boxes.js'
import {builtBox, root} from '../helpers/vm-cli.js'

/**
 * End-to-end tests of the boxes made by boxes/build.sh: each box boots under QEMU (TCG) both
 * from the kernel, initramfs and command line shipped in its archive and from its own disk,
 * and accepts the insecure key over SSH with passwordless sudo; the catalogs' checksums match.
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

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
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
    const machines: ChildProcess[] = []

    beforeAll(() => {
      const file = builtBox(box.name)
      work = mkdtempSync(path.join(tmpdir(), `vm-e2e-${box.name}-`))
      boxDir = path.join(work, 'box')
      const untar = spawnSync('bash', ['-c', 'mkdir -p "$2" && tar -xzf "$1" -C "$2"', 'untar', file, boxDir])
      if (untar.status !== 0) throw new Error(`cannot unpack ${file}: ${untar.stderr}`)
      metadata = JSON.parse(readFileSync(path.join(boxDir, 'metadata.json'), 'utf8')) as Metadata
      // git does not keep file modes; ssh refuses a private key others can read.
      key = path.join(work, 'insecure_key')
      writeFileSync(key, readFileSync(path.join(root, 'boxes/keys/vmfile_insecure_key')), {mode: 0o600})
    })

    afterAll(async () => {
      for (const machine of machines) {
        if (!exited(machine)) {
          machine.kill('SIGKILL')
          await waitExit(machine, 5_000)
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
        const dir = mkdtempSync(path.join(work, `${mode}-`))
        const overlay = path.join(dir, 'overlay.qcow2')
        const serial = path.join(dir, 'serial.log')
        const monitor = path.join(dir, 'qmp.sock')
        const created = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(boxDir, 'box.img'), overlay])
        expect(created.status, String(created.stderr)).toBe(0)

        const port = await freePort()
        const args = [
          ...['-machine', 'q35,accel=tcg', '-m', '512', '-smp', '2'],
          ...['-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none'],
          ...['-serial', `file:${serial}`, '-qmp', `unix:${monitor},server=on,wait=off`],
          ...['-drive', `if=virtio,file=${overlay},format=qcow2`],
          ...['-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0,romfile='],
          ...['-device', 'virtio-rng-pci'],
        ]
        if (mode === 'direct') {
          if (metadata.firmware === 'qboot') args.push('-bios', '/usr/share/qemu/qboot.rom')
          args.push('-kernel', path.join(boxDir, metadata.kernel), '-initrd', path.join(boxDir, metadata.initrd))
          args.push('-append', metadata.cmdline)
        }

        const start = Date.now()
        const qemu = spawn('qemu-system-x86_64', args, {stdio: ['ignore', 'ignore', 'pipe']})
        machines.push(qemu)
        let qemuErrors = ''
        qemu.stderr?.on('data', (chunk: Buffer) => (qemuErrors += chunk.toString()))

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

        let ready = false
        while (!ready && Date.now() - start < box.sshTimeoutMs) {
          if (exited(qemu)) throw new Error(`QEMU exited: ${qemuErrors}`)
          const result = await ssh('sudo -n id -u')
          ready = result.code === 0 && result.stdout.trim() === '0'
          if (!ready) await sleep(500)
        }
        const serialLog = () => (existsSync(serial) ? readFileSync(serial, 'utf8').slice(-3000) : '')
        expect(ready, `no SSH within ${seconds(box.sshTimeoutMs)} s; serial console:\n${serialLog()}`).toBe(true)
        console.log(`${box.name} ${mode}: SSH ready in ${seconds(Date.now() - start)} s`)

        expect((await ssh('exit 3')).code).toBe(3)

        // Clean power off through the ACPI power button.
        await qmp(monitor, 'system_powerdown')
        const off = await waitExit(qemu, 90_000)
        if (!off) qemu.kill('SIGKILL')
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
