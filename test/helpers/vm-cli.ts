import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

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

/** Builds box `name` into boxes/dist with boxes/build.sh (cached by recipe and packages). */
export function buildBox(name: string): void {
  const build = spawnSync('bash', [path.join(root, 'boxes/build.sh'), name], {stdio: 'inherit', timeout: 1_800_000})
  if (build.status !== 0) throw new Error(`boxes/build.sh ${name} failed`)
}

/** The newest built .box of `name` in boxes/dist, building it (cached) when missing. */
export function builtBox(name: string): string {
  const dir = path.join(root, 'boxes/dist/vmfile')
  const find = (): string | undefined =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((file) => file.startsWith(`${name}-`) && file.endsWith('.box'))
          .sort()
          .map((file) => path.join(dir, file))
          .at(-1)
      : undefined
  if (find() === undefined) buildBox(name)
  const box = find()
  if (box === undefined) throw new Error(`no ${name} box in ${dir}`)
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
