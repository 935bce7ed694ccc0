import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseCopySpec} from '../../src/machine/copy.js'

const bin = path.resolve(import.meta.dirname, '../../bin/run.js')
let work: string

function vm(args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: {...process.env, VM_HOME: path.join(work, '.vm-home'), NO_COLOR: '1'},
  })
  return {code: result.status, stdout: result.stdout, stderr: result.stderr}
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vm-cp-cli-'))
  writeFileSync(path.join(work, 'Vmfile'), 'machines:\n  web:\n    box: vmfile/tiny\n  db:\n    box: vmfile/tiny\n')
  writeFileSync(path.join(work, 'file.txt'), 'x\n')
})
afterAll(() => rmSync(work, {recursive: true, force: true}))

describe('vm cp arguments', () => {
  it('NAME:PATH names a machine ("" the primary one); a path with "/" before the colon stays on the host; ~/ is the home', () => {
    expect(parseCopySpec('web:/etc/hosts')).toEqual({machine: 'web', path: '/etc/hosts'})
    expect(parseCopySpec(':notes.txt')).toEqual({machine: '', path: 'notes.txt'})
    expect(parseCopySpec('./a:b')).toEqual({path: './a:b'})
    expect(parseCopySpec('/tmp/a:b')).toEqual({path: '/tmp/a:b'})
    expect(parseCopySpec('plain.txt')).toEqual({path: 'plain.txt'})
    expect(parseCopySpec('web:~/x/y')).toEqual({machine: 'web', path: 'x/y'})
    expect(parseCopySpec('web:~')).toEqual({machine: 'web', path: '.'})
    expect(parseCopySpec('0123456789abcdef:/tmp/f')).toEqual({machine: '0123456789abcdef', path: '/tmp/f'})
  })

  it('refuses a copy with both sides on the host, an unknown machine, a missing source: clear errors, non-zero exit', () => {
    const local = vm(['cp', 'file.txt', 'other.txt'])
    expect(local.code).toBe(2)
    expect(local.stderr).toContain('Neither file.txt nor other.txt is in a machine')
    expect(local.stderr).toContain('NAME:PATH')
    const unknown = vm(['cp', 'file.txt', 'nosuch:/tmp/'])
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('No machine named "nosuch"')
    const missing = vm(['cp', '--json', 'missing.txt', 'web:/tmp/'])
    expect(missing.code).not.toBe(0)
    expect(JSON.stringify(JSON.parse(missing.stdout))).toContain('missing.txt: no such file or directory')
  })
})
