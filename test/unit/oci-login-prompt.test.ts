import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startRegistry, type TestRegistry} from '../helpers/oci-registry.js'

/**
 * `vm box login` without --password-stdin in a terminal (a pseudo-terminal made by `script`)
 * asks for the user name and the password; the password is not echoed. The built CLI runs
 * against a real registry with htpasswd auth on 127.0.0.1.
 */
const bin = path.resolve('bin/run.js')
let registry: TestRegistry
let work: string

beforeAll(async () => {
  registry = await startRegistry({auth: {user: 'team', password: 'box-pass'}})
  work = mkdtempSync(path.join(tmpdir(), 'vm-login-prompt-'))
}, 60_000)

afterAll(async () => {
  await registry?.stop()
  rmSync(work, {recursive: true, force: true})
})

function env(label: string): NodeJS.ProcessEnv {
  const home = path.join(work, label)
  mkdirSync(path.join(home, 'docker'), {recursive: true})
  return {...process.env, VM_HOME: home, DOCKER_CONFIG: path.join(home, 'docker'), NO_COLOR: '1'}
}

/** Runs vm in a terminal and types each answer once its prompt has appeared. */
async function inTerminal(args: string[], answers: Array<[prompt: string, typed: string]>, environment: NodeJS.ProcessEnv) {
  const command = [process.execPath, bin, ...args].map((part) => `'${part}'`).join(' ')
  const child = spawn('script', ['-qec', command, '/dev/null'], {env: environment, stdio: ['pipe', 'pipe', 'pipe']})
  let output = ''
  const pending = [...answers]
  child.stdout.on('data', (data: Buffer) => {
    output += data.toString('utf8')
    const next = pending[0]
    if (next !== undefined && output.includes(next[0])) {
      pending.shift()
      child.stdin.write(next[1])
    }
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return {code, output: output.replaceAll('\r', '')}
}

describe('vm box login in a terminal', () => {
  it('asks for the password without echoing it, and for the user name when --username is absent', async () => {
    const first = env('asked')
    const ok = await inTerminal(
      ['box', 'login', registry.host, '-u', 'team'],
      [[`Password for team@${registry.host}: `, 'box-pass\r']],
      first,
    )
    expect(ok.code, ok.output).toBe(0)
    expect(ok.output).toContain(`Logged in to ${registry.host}`)
    expect(ok.output).not.toContain('box-pass')
    const stored = JSON.parse(readFileSync(path.join(first.VM_HOME!, 'config/credentials.json'), 'utf8')) as object
    expect(JSON.stringify(stored)).toContain('team')

    const second = env('asked-name')
    const wrong = await inTerminal(
      ['box', 'login', registry.host],
      [
        ['Username: ', 'team\r'],
        [`Password for team@${registry.host}: `, 'not-it\r'],
      ],
      second,
    )
    expect(wrong.code, wrong.output).not.toBe(0)
    expect(wrong.output).toContain('Username: team')
    expect(wrong.output).not.toContain('not-it')
    expect(wrong.output).toMatch(/refused the credentials/)
  }, 60_000)

  it('refuses to ask when standard input is not a terminal', () => {
    const result = spawnSync(process.execPath, [bin, 'box', 'login', registry.host, '-u', 'team'], {
      input: 'box-pass\n',
      encoding: 'utf8',
      env: env('piped'),
    })
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('--password-stdin')
  })
})
