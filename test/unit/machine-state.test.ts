import {spawn, type ChildProcess} from 'node:child_process'
import {closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {machineId, machinePaths} from '../../src/state/machine-files.js'
import {deriveState} from '../../src/state/machine-state.js'
import {processesHolding, processStartTime, readPidfile} from '../../src/state/process-check.js'
import {findMachineProcess, isMachineProcess, matchesMachine, qemuDiskPaths, qemuQmpSocket} from '../../src/driver/qemu/machine-process.js'
import {qemuPaths} from '../../src/driver/qemu/files.js'
import {qemuDriver} from '../../src/driver/qemu/driver.js'
import type {MachineRecord} from '../../src/machine/record.js'

const gone = {created: true, alive: false, cleanPowerOff: false}

describe('deriveState', () => {
  it('not created without a record', () => {
    expect(deriveState({...gone, created: false, lastRecorded: undefined})).toBe('not_created')
  })
  it('running while its QEMU lives', () => {
    expect(deriveState({...gone, alive: true, lastRecorded: 'running'})).toBe('running')
  })
  it('poweroff after a clean halt', () => {
    expect(deriveState({...gone, lastRecorded: 'poweroff'})).toBe('poweroff')
  })
  it('poweroff when the guest powered itself off', () => {
    expect(deriveState({...gone, lastRecorded: 'running', cleanPowerOff: true})).toBe('poweroff')
  })
  it('aborted when the engine died without a clean shutdown', () => {
    expect(deriveState({...gone, lastRecorded: 'running', cleanPowerOff: false})).toBe('aborted')
  })
})

describe('the QEMU driver reads a clean power-off from the serial console', () => {
  const machineIn = (serial: string, lastState: 'poweroff' | 'running') => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-serial-'))
    writeFileSync(path.join(dir, 'serial.log'), serial)
    const record = {id: '0123456789abcdef', name: 'web', lastState} as MachineRecord
    return {name: 'web', dir, id: record.id, record}
  }
  it('a guest that powered itself off', async () => {
    const state = await qemuDriver.inspect(machineIn('[   12.1] reboot: Power down\n', 'running'))
    expect(state).toMatchObject({alive: false, cleanPowerOff: true})
  })
  it('a guest that halted', async () => {
    expect((await qemuDriver.inspect(machineIn('reboot: System halted\r\n', 'running'))).cleanPowerOff).toBe(true)
  })
  it('a QEMU that died under a running guest', async () => {
    expect((await qemuDriver.inspect(machineIn('debian login: ', 'running'))).cleanPowerOff).toBe(false)
  })
})

describe('machine files', () => {
  it('keep the QMP socket on a short path', () => {
    const deep = `/home/someone/${'very-long-directory-name/'.repeat(6)}project`
    const paths = machinePaths(deep, 'web')
    const qemu = qemuPaths(paths.dir, machineId(deep, 'web'), {VM_HOME: '/tmp/h'})
    expect(qemu.qmpSocket).toBe(`/tmp/h/run/${machineId(deep, 'web')}.qmp`)
    expect(qemu.qmpSocket.length).toBeLessThan(108)
    expect(paths.record).toBe(`${deep}/.vm/machines/web/machine.json`)
    expect(qemu.overlay(1)).toBe(`${deep}/.vm/machines/web/disk1.qcow2`)
  })
  it('machine ids differ per project and name', () => {
    expect(machineId('/a', 'web')).not.toBe(machineId('/b', 'web'))
    expect(machineId('/a', 'web')).not.toBe(machineId('/a', 'db'))
  })
})

describe('process check', () => {
  it('is not fooled by a live process that is not the machine (a recycled PID)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-pid-'))
    writeFileSync(path.join(dir, 'disk0.qcow2'), 'overlay')
    const child = spawn('sleep', ['30'])
    try {
      writeFileSync(path.join(dir, 'qemu.pid'), `${child.pid}\n`)
      const pid = readPidfile(path.join(dir, 'qemu.pid'))
      expect(pid).toBe(child.pid)
      expect(isMachineProcess(pid, {pid: path.join(dir, 'qemu.pid'), overlay: path.join(dir, 'disk0.qcow2')})).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
  it('a process keeps its start time until it exits; a zombie has none', async () => {
    const child = spawn('sleep', ['30'])
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = processStartTime(child.pid!)
    expect(started).toMatch(/^\d+$/)
    expect(processStartTime(child.pid!)).toBe(started)
    child.kill('SIGKILL')
    await new Promise((resolve) => child.on('exit', resolve))
    expect(processStartTime(child.pid!)).toBeUndefined()
  })
  it('a missing or garbage pidfile is no process', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-pid-'))
    writeFileSync(path.join(dir, 'bad.pid'), 'not a pid')
    expect(readPidfile(path.join(dir, 'bad.pid'))).toBeUndefined()
    expect(readPidfile(path.join(dir, 'missing.pid'))).toBeUndefined()
    expect(isMachineProcess(undefined, {pid: path.join(dir, 'bad.pid'), overlay: path.join(dir, 'disk0.qcow2')})).toBe(false)
  })
})

/**
 * /proc/PID/cmdline of a machine's QEMU, recorded from `vm up` of the tiny box
 * (tr '\0' '\n' < /proc/$(cat .vm/machines/default/qemu.pid)/cmdline), project /tmp/p,,x.
 */
const recordedCmdline = [
  'qemu-system-x86_64',
  '-name',
  'default,process=vm-default',
  '-machine',
  'pc,accel=tcg',
  '-cpu',
  'qemu64',
  '-smp',
  '1',
  '-m',
  '256',
  '-nodefaults',
  '-no-user-config',
  '-display',
  'none',
  '-vga',
  'none',
  '-serial',
  'file:/tmp/p,x/.vm/machines/default/serial.log',
  '-pidfile',
  '/tmp/p,x/.vm/machines/default/qemu.pid',
  '-qmp',
  'unix:/run/user/1000/vmfile/0123456789abcdef.qmp,server=on,wait=off',
  '-daemonize',
  '-drive',
  'file=/tmp/p,,x/.vm/machines/default/disk0.qcow2,format=qcow2,if=virtio,index=0,cache=writeback,discard=unmap',
  '-kernel',
  '/home/u/.local/share/vmfile/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/vmlinux',
  '-netdev',
  'user,id=net0,hostfwd=tcp:127.0.0.1:2200-:22',
  '-device',
  'virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,romfile=',
]

describe('recognizing a machine QEMU', () => {
  const overlay = {dev: 2049, ino: 131_077}
  it('reads the disks and the QMP socket from a recorded command line (commas undoubled)', () => {
    expect(qemuDiskPaths(recordedCmdline)).toEqual(['/tmp/p,x/.vm/machines/default/disk0.qcow2'])
    expect(qemuQmpSocket(recordedCmdline)).toBe('/run/user/1000/vmfile/0123456789abcdef.qmp')
    expect(qemuQmpSocket(['sleep', '30'])).toBeUndefined()
  })
  it('matches the QEMU holding the overlay file, whatever paths its command line names', () => {
    expect(matchesMachine(recordedCmdline, [{dev: 2049, ino: 5}, overlay], overlay)).toBe(true)
  })
  it('does not match a process holding another file (a recycled PID, a recreated overlay)', () => {
    expect(matchesMachine(recordedCmdline, [{dev: 2049, ino: 5}], overlay)).toBe(false)
    expect(matchesMachine(recordedCmdline, [{dev: 2050, ino: overlay.ino}], overlay)).toBe(false)
  })
  it('does not match a process that is not a QEMU with a pidfile and disks, even holding the overlay', () => {
    expect(matchesMachine(['qemu-img', 'info', '/tmp/p/.vm/machines/default/disk0.qcow2'], [overlay], overlay)).toBe(false)
  })

  /** A process that looks like the machine's QEMU: its command line and the overlay open on stdout. */
  function fakeQemu(dir: string): ChildProcess {
    const disk = path.join(dir, 'disk0.qcow2')
    const fd = openSync(disk, 'a')
    const args = ['-e', 'setTimeout(() => {}, 30000)', '--', '-pidfile', path.join(dir, 'qemu.pid'), '-drive', `file=${disk},format=qcow2`]
    args.push('-qmp', `unix:${path.join(dir, 'abc.qmp')},server=on,wait=off`)
    const child = spawn(process.execPath, args, {stdio: ['ignore', fd, 'ignore']})
    closeSync(fd)
    writeFileSync(path.join(dir, 'qemu.pid'), `${child.pid}\n`)
    return child
  }

  it('a live process holding the overlay is the machine, also after its project directory moved', async () => {
    const project = mkdtempSync(path.join(tmpdir(), 'vm-moved-'))
    const dir = path.join(project, 'machines/default')
    mkdirSync(dir, {recursive: true})
    writeFileSync(path.join(dir, 'disk0.qcow2'), 'overlay')
    const child = fakeQemu(dir)
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      const files = (base: string) => ({
        pid: path.join(base, 'machines/default/qemu.pid'),
        overlay: path.join(base, 'machines/default/disk0.qcow2'),
      })
      expect(findMachineProcess(files(project))).toEqual({pid: child.pid, qmpSocket: path.join(dir, 'abc.qmp')})
      const moved = `${project}-moved`
      renameSync(project, moved)
      expect(findMachineProcess(files(moved))?.pid).toBe(child.pid)
      // The overlay replaced by another file (the machine destroyed and made again): not this QEMU.
      rmSync(path.join(moved, 'machines/default/disk0.qcow2'))
      writeFileSync(path.join(moved, 'machines/default/disk0.qcow2'), 'new overlay')
      expect(findMachineProcess(files(moved))).toBeUndefined()
      expect(processesHolding(path.join(moved, 'machines/default/disk0.qcow2'))).toEqual([])
    } finally {
      child.kill('SIGKILL')
    }
  })
  it('finds every process that holds a disk open', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-holders-'))
    writeFileSync(path.join(dir, 'disk0.qcow2'), 'overlay')
    const child = fakeQemu(dir)
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(processesHolding(path.join(dir, 'disk0.qcow2'))).toEqual([child.pid])
    } finally {
      child.kill('SIGKILL')
    }
  })
})
