import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {machineId, machinePaths} from '../../src/state/machine-files.js'
import {deriveState} from '../../src/state/machine-state.js'
import {isMachineProcess, readPidfile} from '../../src/state/process-check.js'

const gone = {created: true, processAlive: false, serialTail: ''}

describe('deriveState', () => {
  it('not created without a record', () => {
    expect(deriveState({...gone, created: false, lastRecorded: undefined})).toBe('not_created')
  })
  it('running while its QEMU lives', () => {
    expect(deriveState({...gone, processAlive: true, lastRecorded: 'running'})).toBe('running')
  })
  it('poweroff after a clean halt', () => {
    expect(deriveState({...gone, lastRecorded: 'poweroff'})).toBe('poweroff')
  })
  it('poweroff when the guest powered itself off', () => {
    expect(deriveState({...gone, lastRecorded: 'running', serialTail: '[   12.1] reboot: Power down\n'})).toBe('poweroff')
  })
  it('aborted when QEMU died without a clean shutdown', () => {
    expect(deriveState({...gone, lastRecorded: 'running', serialTail: 'login: '})).toBe('aborted')
  })
})

describe('machine files', () => {
  it('keep the QMP socket on a short path', () => {
    const deep = `/home/someone/${'very-long-directory-name/'.repeat(6)}project`
    const paths = machinePaths(deep, 'web', {VM_HOME: '/tmp/h'})
    expect(paths.qmpSocket).toBe(`/tmp/h/run/${machineId(deep, 'web')}.qmp`)
    expect(paths.qmpSocket.length).toBeLessThan(108)
    expect(paths.record).toBe(`${deep}/.vm/machines/web/machine.json`)
    expect(paths.overlay(1)).toBe(`${deep}/.vm/machines/web/disk1.qcow2`)
  })
  it('machine ids differ per project and name', () => {
    expect(machineId('/a', 'web')).not.toBe(machineId('/b', 'web'))
    expect(machineId('/a', 'web')).not.toBe(machineId('/a', 'db'))
  })
})

describe('process check', () => {
  it('is not fooled by a live process that is not the machine (a recycled PID)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-pid-'))
    const child = spawn('sleep', ['30'])
    try {
      writeFileSync(path.join(dir, 'qemu.pid'), `${child.pid}\n`)
      const pid = readPidfile(path.join(dir, 'qemu.pid'))
      expect(pid).toBe(child.pid)
      expect(isMachineProcess(pid, '/tmp/vmfile-0/abc.qmp')).toBe(false)
      expect(isMachineProcess(pid, '30')).toBe(true)
    } finally {
      child.kill('SIGKILL')
    }
  })
  it('a missing or garbage pidfile is no process', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-pid-'))
    writeFileSync(path.join(dir, 'bad.pid'), 'not a pid')
    expect(readPidfile(path.join(dir, 'bad.pid'))).toBeUndefined()
    expect(readPidfile(path.join(dir, 'missing.pid'))).toBeUndefined()
    expect(isMachineProcess(undefined, 'x')).toBe(false)
  })
})
