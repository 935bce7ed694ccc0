import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {inject} from 'vitest'

import {BOX_BUILD_FAILURES, boxesCatalogDir, findBuiltBox} from './built-boxes.js'

export const root = path.resolve(import.meta.dirname, '../..')
const bin = path.join(root, 'bin/run.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs the built CLI as a subprocess, as a user would (asynchronously, so the test worker
 * stays responsive during long boots).
 */
export function vm(
  args: string[],
  options: {cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number; /** A command that runs vm, e.g. ip netns exec NS. */ wrap?: string[]},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const command = [...(options.wrap ?? []), process.execPath, bin, ...args]
    const child = spawn(command[0]!, command.slice(1), {
      cwd: options.cwd,
      env: {...process.env, NO_COLOR: '1', ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stdout, stderr})
    })
  })
}

/**
 * The newest built .box of `name` (boxes/dist, or $VM_BOXES_OUT, as boxes/build.sh writes it).
 * Only looks: the e2e global setup (test/global-setup-e2e.ts) builds missing boxes before any
 * worker starts. Fails with the build's message when that build failed, and with what to do
 * when the box is simply not there.
 */
export function builtBox(name: string): string {
  const failure = inject(BOX_BUILD_FAILURES)?.[name]
  if (failure !== undefined) throw new Error(failure)
  const box = findBuiltBox(name)
  if (box === undefined) {
    throw new Error(
      `no built ${name} box in ${boxesCatalogDir()} (catalog ${name}.json and the archive it names): ` +
        `the e2e project's global setup builds missing boxes before the tests start; run the tests with ` +
        `vitest's e2e project (npm test, or npx vitest run --project e2e ...) or build it: sudo npm run boxes -- ${name}`,
    )
  }
  return box
}

/**
 * Puts a .box into a store the way the store lays boxes out (name/version/arch/provider),
 * for tests that need a box without exercising `vm box add`.
 */
export function installBox(boxFile: string, storeDir: string, name: string, version: string): string {
  const dir = path.join(storeDir, name.replaceAll('/', '-VAGRANTSLASH-'), version, 'amd64', 'libvirt')
  mkdirSync(dir, {recursive: true})
  const untar = spawnSync('tar', ['-xf', boxFile, '-C', dir])
  if (untar.status !== 0) throw new Error(`tar -xf ${boxFile} failed: ${untar.stderr}`)
  for (const file of readdirSync(dir)) chmodSync(path.join(dir, file), 0o444)
  return dir
}

/** A throwaway VM_HOME with one of our boxes installed, and a project directory, for one describe block. */
export interface MachineFixture {
  home: string
  project: string
  env: NodeJS.ProcessEnv
  /** Runs vm in the project. */
  run(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<CliResult>
  /** Runs a command in the (primary) machine over vm ssh; its trimmed stdout. */
  guest(command: string): Promise<string>
  /** Destroys the project's machines and removes both directories. */
  cleanup(): Promise<void>
}

export function machineFixture(
  label: string,
  box: 'debian-12' | 'tiny',
  options: {timeoutMs?: number; projectPrefix?: string} = {},
): MachineFixture {
  const home = mkdtempSync(path.join(tmpdir(), `vm-e2e-${label}-home-`))
  const project = mkdtempSync(path.join(tmpdir(), options.projectPrefix ?? `vm-e2e-${label}-`))
  chmodSync(project, 0o755) // as a project directory normally is; mkdtemp makes it 0700
  const env = {VM_HOME: home}
  installBox(builtBox(box), path.join(home, 'data/boxes'), `vmfile/${box}`, '1.0.0')
  const run = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    vm(args, {cwd: project, env: {...env, ...extraEnv}, timeoutMs: options.timeoutMs})
  return {
    home,
    project,
    env,
    run,
    guest: async (command) => (await run(['ssh', '-c', command])).stdout.trim(),
    async cleanup() {
      await run(['destroy', '-f'])
      rmSync(project, {recursive: true, force: true})
      rmSync(home, {recursive: true, force: true})
    },
  }
}

/** Where a test's ssh reaches a machine: its host (default 127.0.0.1), and a command ssh runs under (e.g. `ip netns exec NS`). */
export interface LoginPlace {
  host?: string | undefined
  wrap?: readonly string[] | undefined
}

/**
 * One batch login to `host`:`port` as `user` with a copy of the private key `keyFile`, and
 * nothing else (no agent, no other key, no known_hosts): whether that key alone gets in.
 */
export function keyLogin(home: string, port: number, keyFile: string, user: string, place: LoginPlace = {}): {ok: boolean; stderr: string} {
  const key = path.join(home, `login-key-${path.basename(keyFile)}`)
  writeFileSync(key, readFileSync(keyFile), {mode: 0o600})
  const options = [
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
  ]
  const command = [
    ...(place.wrap ?? []),
    'ssh',
    '-i',
    key,
    ...options,
    '-o',
    'ConnectTimeout=5',
    '-p',
    String(port),
    `${user}@${place.host ?? '127.0.0.1'}`,
    'true',
  ]
  const login = spawnSync(command[0]!, command.slice(1), {encoding: 'utf8'})
  return {ok: login.status === 0, stderr: login.stderr}
}

/** Whether the box's well-known insecure key logs into the machine whose SSH is on `port` (at `place`). */
export function insecureLoginWorks(home: string, port: number, place: LoginPlace = {}): boolean {
  return keyLogin(home, port, path.join(root, 'boxes/keys/vmfile_insecure_key'), 'vm', place).ok
}
