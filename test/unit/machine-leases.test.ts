import {existsSync, readFileSync, writeFileSync} from 'node:fs'

import {afterEach, describe, expect, it, vi} from 'vitest'

import {destroyMachine, haltMachine} from '../../src/machine/halt.js'
import {leaseFile, leasesDir, transferLease, type HostPort} from '../../src/network/ports.js'
import {machinePaths} from '../../src/state/machine-files.js'
import {createMachine, key, project, storeWith, stored} from '../helpers/box-users.js'

afterEach(() => {
  vi.unstubAllEnvs()
})

const ssh: HostPort = {protocol: 'tcp', hostIp: '127.0.0.1', port: 2291}
const vnc: HostPort = {protocol: 'tcp', hostIp: '127.0.0.1', port: 5917}
const forwarded: HostPort = {protocol: 'udp', hostIp: '', port: 46531}
const othersVnc: HostPort = {protocol: 'tcp', hostIp: '127.0.0.1', port: 5918}

/**
 * A created machine whose record names an SSH port, a VNC display and a forwarded port, each
 * with a lease in the (test's own) lease directory, as vm up leaves them; plus another
 * machine's VNC lease. The leases are held by this process (alive), as if its QEMU still ran.
 */
async function machineWithLeases(): Promise<{dir: string; leases: string}> {
  const {home, root} = storeWith([key('1.0.0')])
  const dir = project(home, 'p')
  const id = await createMachine(dir, 'web', await stored(key('1.0.0'), root), root)
  const file = machinePaths(dir, 'web').record
  const record = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  writeFileSync(
    file,
    JSON.stringify({
      ...record,
      ssh: {host: '127.0.0.1', port: ssh.port, user: 'vm', keyReplaced: true},
      vncDisplay: vnc.port - 5900,
      forwards: [{guest: 53, host: forwarded.port, hostIp: forwarded.hostIp, protocol: forwarded.protocol}],
    }),
  )
  const leases = await leasesDir()
  for (const target of [ssh, vnc, forwarded]) await transferLease(leases, target.port, id, process.pid, target)
  await transferLease(leases, othersVnc.port, 'another-machine', process.pid, othersVnc)
  return {dir, leases}
}

describe('halt and destroy give back the machine leases', () => {
  it('destroy gives back the SSH, VNC and forwarded-port leases, and no other machine lease', async () => {
    const {dir, leases} = await machineWithLeases()
    expect((await destroyMachine(dir, 'web')).destroyed).toBe(true)
    for (const target of [ssh, vnc, forwarded]) expect(existsSync(leaseFile(leases, target))).toBe(false)
    expect(existsSync(leaseFile(leases, othersVnc))).toBe(true)
  })

  it('halt gives back the SSH, VNC and forwarded-port leases, and no other machine lease', async () => {
    const {dir, leases} = await machineWithLeases()
    await haltMachine(dir, 'web', 0)
    for (const target of [ssh, vnc, forwarded]) expect(existsSync(leaseFile(leases, target))).toBe(false)
    expect(existsSync(leaseFile(leases, othersVnc))).toBe(true)
  })
})
