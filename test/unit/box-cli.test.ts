import {spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {makeBox, startServer, type TestServer} from '../helpers/box-fixtures.js'
import {vm as vmIn} from '../helpers/vm-cli.js'

const root = path.resolve(import.meta.dirname, '../..')
const bin = path.join(root, 'bin/run.js')
let work: string
let server: TestServer
// Each test runs the built CLI a few times (about a second each on a busy machine).
vi.setConfig({testTimeout: 60_000})

function env(home: string): NodeJS.ProcessEnv {
  return {...process.env, VM_HOME: home, VM_NO_BUILTIN_REGISTRY: '1', NO_COLOR: '1'}
}

function vm(home: string, args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], {env: env(home), encoding: 'utf8', cwd: work})
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-box-cli-'))
  server = await startServer()
})

afterAll(async () => {
  await server.close()
})

describe('the built vm CLI manages boxes', () => {
  it('adds, lists, refuses to remove a box in use, then removes it', () => {
    const home = path.join(work, 'home1')
    const box = makeBox(work, 'cli.box', {metadata: {provider: 'libvirt', format: 'qcow2', name: 'cli/box', version: '1.2.3'}})
    const added = vm(home, ['box', 'add', box, '--json'])
    expect(added.code, added.stderr).toBe(0)
    expect(JSON.parse(added.stdout).result).toMatchObject({name: 'cli/box', version: '1.2.3', provider: 'libvirt', alreadyPresent: false})
    const list = vm(home, ['box', 'list'])
    expect(list.stdout).toMatch(/cli\/box\s+1\.2\.3\s+\S+\s+libvirt/)

    const project = path.join(work, 'project')
    const machineDir = path.join(project, '.vm', 'machines', 'web')
    mkdirSync(machineDir, {recursive: true})
    const arch = JSON.parse(added.stdout).result.architecture
    writeFileSync(
      path.join(machineDir, 'machine.json'),
      JSON.stringify({box: {name: 'cli/box', version: '1.2.3', architecture: arch, provider: 'libvirt'}}),
    )
    mkdirSync(path.join(home, 'data'), {recursive: true})
    writeFileSync(path.join(home, 'data', 'machines.json'), JSON.stringify({machines: [{id: 'x', name: 'web', projectDir: project}]}))
    const refused = vm(home, ['box', 'remove', 'cli/box'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('is used by a machine')
    expect(refused.stderr).toContain(`machine "web" in ${project}`)
    const removed = vm(home, ['box', 'remove', 'cli/box', '--force'])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toContain('Removed box cli/box 1.2.3')
    expect(vm(home, ['box', 'list']).stdout).toContain('There are no boxes')
  })

  it('stops cleanly on Ctrl-C and resumes on the next run; a concurrent add waits and reuses', async () => {
    const home = path.join(work, 'home2')
    const box = makeBox(work, 'big.box', {
      metadata: {provider: 'qemu', format: 'qcow2', name: 'cli/big', version: '1.0.0'},
      files: {blob: randomBytes(4 << 20)},
    })
    server.routes.set('/big.box', {body: readFileSync(box), delayMs: 20})
    const child = spawn(process.execPath, [bin, 'box', 'add', `${server.url}/big.box`, '--debug'], {
      env: env(home),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    // Interrupt once the download is under way (its partial file exists), not during start-up.
    const downloads = path.join(home, 'cache', 'downloads')
    for (let wait = 0; wait < 200; wait++) {
      if (existsSync(downloads) && readdirSync(downloads).some((file) => file.endsWith('.part'))) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    child.kill('SIGINT')
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(code, stderr).toBe(130)
    expect(stderr).toContain('Interrupted')
    const boxes = path.join(home, 'data', 'boxes')
    expect(readdirSync(boxes), `${stderr}\n${JSON.stringify(readdirSync(boxes, {recursive: true}))}`).toEqual([])
    expect(readdirSync(path.join(home, 'cache', 'downloads')).some((file) => file.endsWith('.part'))).toBe(true)

    server.routes.set('/big.box', {body: readFileSync(box), delayMs: 2})
    const runs = [0, 1].map(
      () =>
        new Promise<{code: number | null; out: string}>((resolve) => {
          const run = spawn(process.execPath, [bin, 'box', 'add', `${server.url}/big.box`, '--json'], {
            env: env(home),
            stdio: ['ignore', 'pipe', 'ignore'],
          })
          let out = ''
          run.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
          run.on('close', (status) => resolve({code: status, out}))
        }),
    )
    const results = await Promise.all(runs)
    expect(results.map((result) => result.code)).toEqual([0, 0])
    const present = results.map((result) => JSON.parse(result.out).result.alreadyPresent).sort()
    expect(present).toEqual([false, true])
    const ranged = server.log.filter((entry) => entry.path === '/big.box' && entry.range !== undefined)
    expect(ranged.length).toBe(1)
  })
})

describe('vm up with a box that does not exist', () => {
  it('creates no .vm/ directory', async () => {
    const project = mkdtempSync(path.join(tmpdir(), 'vm-nobox-'))
    const home = mkdtempSync(path.join(tmpdir(), 'vm-nobox-home-'))
    try {
      writeFileSync(path.join(project, 'Vmfile'), 'box: example/none\nbox_url: ./missing.box\n')
      const up = await vmIn(['up'], {cwd: project, env: {VM_HOME: home}})
      expect(up.code).toBe(1)
      expect(up.stderr).toContain('missing.box')
      expect(existsSync(path.join(project, '.vm'))).toBe(false)
    } finally {
      rmSync(project, {recursive: true, force: true})
      rmSync(home, {recursive: true, force: true})
    }
  })
})
