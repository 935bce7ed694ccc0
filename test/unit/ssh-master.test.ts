import {mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {lostSession} from '../../src/ssh/exec.js'
import {closeMaster, controlPathFor, masterSockets, MAX_CONTROL_PATH, prepareControlPath} from '../../src/ssh/master.js'
import {masterExitArgs, sshArgs} from '../../src/ssh/options.js'
import {sampleTarget} from '../helpers/ssh-target.js'

const machine = {...sampleTarget, machineId: '0123456789abcdef'}
const scratch = mkdtempSync(path.join(tmpdir(), 'vm-master-'))
const env = {VM_RUNTIME_DIR: path.join(scratch, 'run')}
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

describe('the shared SSH connection (ControlMaster)', () => {
  it('one socket per machine and way of logging in, in the private runtime directory', () => {
    const file = controlPathFor(machine, env)!
    expect(path.dirname(file)).toBe(path.join(env.VM_RUNTIME_DIR, 'ssh'))
    expect(path.basename(file)).toMatch(/^0123456789abcdef-[0-9a-f]{10}$/)
    expect(controlPathFor(machine, env)).toBe(file)
    // Another key, user or port: another connection (a login made with one key is never reused for another).
    expect(controlPathFor({...machine, identityFiles: ['/other/key']}, env)).not.toBe(file)
    expect(controlPathFor({...machine, user: 'root'}, env)).not.toBe(file)
    expect(controlPathFor({...machine, port: 2202}, env)).not.toBe(file)
  })

  it('is not shared where that would be unsafe: no machine, host key not pinned yet, agent forwarding', () => {
    expect(controlPathFor(sampleTarget, env)).toBeUndefined()
    expect(controlPathFor({...machine, strictHostKeyChecking: 'accept-new'}, env)).toBeUndefined()
    expect(controlPathFor({...machine, forwardAgent: true}, env)).toBeUndefined()
    expect(controlPathFor({...machine, machineId: '../x'}, env)).toBeUndefined()
  })

  it('is not used when the socket path would not fit a Unix socket (ssh adds a 17-byte suffix while binding)', () => {
    const fits = {VM_RUNTIME_DIR: `/r/${'a'.repeat(MAX_CONTROL_PATH - 3 - 32)}`}
    expect(controlPathFor(machine, fits)!.length).toBe(MAX_CONTROL_PATH)
    expect(controlPathFor(machine, {VM_RUNTIME_DIR: `${fits.VM_RUNTIME_DIR}b`})).toBeUndefined()
    expect(MAX_CONTROL_PATH + 17 + 1).toBeLessThanOrEqual(104)
  })

  it('ssh options: auto master with a short persist and keep-alive; "none" turns sharing off; a path with spaces is quoted', () => {
    const shared = sshArgs(machine, {batch: true, controlPath: '/run/vm/ssh/a b'}).join(' ')
    expect(shared).toContain('-o ControlMaster=auto -o ControlPath="/run/vm/ssh/a b" -o ControlPersist=60')
    expect(shared).toContain('-o ServerAliveInterval=10 -o ServerAliveCountMax=3')
    expect(sshArgs(machine, {controlPath: 'none'}).join(' ')).toContain('-o ControlPath=none')
    expect(sshArgs(machine).join(' ')).not.toContain('Control')
    expect(sshArgs(machine, {tty: 'force'}).slice(-2)).toEqual(['-tt', '127.0.0.1'])
    expect(masterExitArgs('/run/x')).toEqual(['-o', 'LogLevel=QUIET', '-o', 'ControlPath=/run/x', '-O', 'exit', 'vm-master'])
  })

  it('prepareControlPath makes the socket directory private; closeMaster removes stale sockets of that machine only', async () => {
    const file = (await prepareControlPath(machine, env))!
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700)
    const other = path.join(path.dirname(file), 'fedcba9876543210-0000000000')
    writeFileSync(file, '')
    writeFileSync(other, '')
    expect(await masterSockets('0123456789abcdef', env)).toEqual([file])
    await closeMaster('0123456789abcdef', env)
    expect(await masterSockets('0123456789abcdef', env)).toEqual([])
    expect(await masterSockets('fedcba9876543210', env)).toEqual([other])
  })

  it('a session lost by the shared connection (255, silent, no output) is told apart from ssh failures', () => {
    expect(lostSession(255, '', '')).toBe(true)
    expect(lostSession(255, '', 'ssh: connect to host 127.0.0.1 port 2200: Connection refused\n')).toBe(false)
    expect(lostSession(255, 'partial output', '')).toBe(false)
    expect(lostSession(1, '', '')).toBe(false)
  })
})
