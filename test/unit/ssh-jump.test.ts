import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import {runAnsible} from '../../src/provision/ansible.js'
import {runFile} from '../../src/provision/file.js'
import {runShell} from '../../src/provision/shell.js'
import {runInGuest} from '../../src/ssh/exec.js'
import type {SshTarget} from '../../src/ssh/options.js'
import {rsyncFolder} from '../../src/sync/folders.js'
import type {Provisioner} from '../../src/vmfile/types.js'
import {sampleTarget} from '../helpers/ssh-target.js'

/**
 * A guest behind a jump host, as a remote engine returns it: every program that runs ssh for
 * vm (vm itself, rsync, ansible-playbook) must hand ssh the jump. A stand-in `ssh` first on
 * PATH records the arguments each program gives it; the real ssh then says (ssh -G) what it
 * would make of them.
 */
const guest: SshTarget = {...sampleTarget, host: '192.168.122.10', port: 22, jump: {host: 'fd00::7', port: 2222, user: 'ops'}}

const realSsh = spawnSync('sh', ['-c', 'command -v ssh'], {encoding: 'utf8'}).stdout.trim()

describe('every program that runs ssh for vm goes through the jump host', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-ssh-jump-'))
  const bin = path.join(dir, 'bin')
  const calls = path.join(dir, 'calls')
  const project = path.join(dir, 'project')
  mkdirSync(bin)
  mkdirSync(project)
  // One file per call, arguments NUL-separated; 255 is how ssh fails when it cannot connect.
  writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\nn=$(ls "${calls}" | wc -l)\nprintf '%s\\0' "$@" > "${calls}/$n"\nexit 255\n`, {
    mode: 0o755,
  })
  writeFileSync(path.join(project, 'site.yml'), '- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n')
  writeFileSync(path.join(project, 'app.conf'), 'key=value\n')

  beforeEach(() => {
    rmSync(calls, {recursive: true, force: true})
    mkdirSync(calls)
    vi.stubEnv('PATH', `${bin}:${process.env.PATH}`)
    vi.stubEnv('HOME', dir) // ansible keeps its temporary files and control sockets under ~/.ansible
  })
  afterEach(() => vi.unstubAllEnvs())
  afterAll(() => rmSync(dir, {recursive: true, force: true}))

  /** The argument lists the stand-in ssh was called with, in order. */
  function recorded(): string[][] {
    const files = readdirSync(calls).sort((a, b) => Number(a) - Number(b))
    return files.map((file) => readFileSync(path.join(calls, file), 'utf8').split('\0').slice(0, -1))
  }

  /** What the real ssh makes of a recorded call's options and host (the remote command left out). */
  function sshSees(args: string[]): Map<string, string> {
    const host = args.indexOf(guest.host)
    expect(host, args.join(' ')).toBeGreaterThan(0)
    const result = spawnSync(realSsh, ['-G', '-F', '/dev/null', ...args.slice(0, host + 1)], {encoding: 'utf8'})
    expect(result.status, result.stderr).toBe(0)
    return new Map(result.stdout.split('\n').map((line) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)]))
  }

  function expectJumped(count: number): void {
    // ansible-playbook also asks ssh whether it knows ControlPersist, without a host.
    const seen = recorded().filter((args) => !(args.length === 2 && args[1] === 'ControlPersist'))
    expect(seen).toHaveLength(count)
    for (const args of seen) {
      const options = sshSees(args)
      expect(options.get('proxyjump'), args.join(' ')).toBe('ops@[fd00::7]:2222')
      expect(options.get('hostname')).toBe('192.168.122.10')
    }
  }

  const context = {target: guest, projectDir: project, machine: 'default', stateDir: dir, onStdout: () => {}, onStderr: () => {}}

  it('a command in the guest', async () => {
    await expect(runInGuest(guest, 'true')).rejects.toThrow(/ssh exited with status 255/)
    expectJumped(1)
  })

  it('shell and file provisioners', async () => {
    const shell: Provisioner = {
      ...{type: 'shell', name: 's', run: 'once', inline: 'true', path: undefined},
      ...{args: [], env: {}, privileged: false, uploadPath: '/tmp/s'},
    }
    expect(await runShell(shell as Extract<Provisioner, {type: 'shell'}>, context)).toBe(255)
    const file: Provisioner = {type: 'file', name: 'f', run: 'once', source: 'app.conf', destination: '/etc/app.conf'}
    expect(await runFile(file as Extract<Provisioner, {type: 'file'}>, context)).toBe(255)
    expectJumped(2)
  })

  it('rsync of a synced folder (and the mkdir before it)', async () => {
    const folder = {host: project, guest: '/vagrant', type: 'rsync' as const, readOnly: false, exclude: []}
    await expect(rsyncFolder(folder, guest, () => {})).rejects.toThrow(/rsync of .* failed/)
    expectJumped(2)
  })

  it('ansible-playbook', async () => {
    const play: Provisioner = {type: 'ansible', name: 'play', run: 'once', playbook: 'site.yml', extraVars: {}, become: false}
    expect(await runAnsible(play as Extract<Provisioner, {type: 'ansible'}>, context)).not.toBe(0)
    expectJumped(1)
  })
})
