import {mkdtempSync, readdirSync, readFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {startWithLeasedPorts} from '../../src/driver/qemu/leased-start.js'
import {failedHostForward, resolveForwards, type ResolvedForward} from '../../src/network/forwards.js'
import {runProgram} from '../../src/process/run.js'
import type {ForwardedPort} from '../../src/vmfile/types.js'

const scratch = (): string => mkdtempSync(path.join(tmpdir(), 'vm-clash-'))
const forward = (host: number, autoCorrect = false): ForwardedPort => ({guest: 80, host, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect})

describe('which host forwarding rule QEMU failed on', () => {
  // Recorded from QEMU 7.2 with the host port already bound:
  // qemu-system-x86_64 -machine none -display none -nodefaults -netdev user,id=n0,hostfwd=RULE -daemonize -pidfile /tmp/x.pid
  const said = (rule: string) => `qemu-system-x86_64: -netdev user,id=n0,hostfwd=${rule}: Could not set up host forwarding rule '${rule}'\n`

  it('names the protocol, address and port', () => {
    expect(failedHostForward(said('tcp:127.0.0.1:46391-:22'))).toEqual({protocol: 'tcp', hostIp: '127.0.0.1', port: 46391})
    expect(failedHostForward(said('udp:127.0.0.1:46392-:53'))).toEqual({protocol: 'udp', hostIp: '127.0.0.1', port: 46392})
    expect(failedHostForward(said('tcp::8080-:80'))).toEqual({protocol: 'tcp', hostIp: '', port: 8080})
  })

  it('is nothing for other failures', () => {
    expect(
      failedHostForward(
        "qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:[::1]:1-:80: Invalid host forwarding rule 'tcp:[::1]:1-:80' (Bad host address)",
      ),
    ).toBe(undefined)
    expect(failedHostForward('qemu-system-x86_64: Could not open disk0.qcow2: Permission denied')).toBe(undefined)
  })
})

describe('forwarded ports are leased like SSH ports', () => {
  it('a machine that is starting holds its forwarded port: a second machine gets an error naming it', async () => {
    const leases = scratch()
    const first = await resolveForwards('web', [forward(46401)], leases, 'machine-a', () => {})
    expect(first[0]?.host).toBe(46401)
    // Nothing listens on 46401 yet (the first machine's QEMU has not started): the lease decides.
    await expect(resolveForwards('db', [forward(46401)], leases, 'machine-b', () => {})).rejects.toThrow(
      'Host port 127.0.0.1:46401/tcp (forwarded to guest port 80 of machine db) is already in use',
    )
  })

  it('a failed resolution gives back the leases it took', async () => {
    const leases = scratch()
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(46403, '127.0.0.1', resolve))
    try {
      await expect(resolveForwards('web', [forward(46402), forward(46403)], leases, 'a', () => {})).rejects.toThrow(/46403\/tcp/)
    } finally {
      blocker.close()
    }
    expect(readdirSync(leases).filter((file) => file.endsWith('.lease'))).toEqual([])
  })
})

/**
 * A real QEMU started the way vm starts it (daemonized, with user-mode forwarding rules),
 * while another program (a listener here, which takes no lease) grabs a port just before.
 */
describe('a port taken between the lease and QEMU start', () => {
  const servers: Server[] = []
  const pids: number[] = []
  afterEach(() => {
    for (const server of servers.splice(0)) server.close()
    for (const pid of pids.splice(0)) process.kill(pid, 'SIGKILL')
  })

  const grab = (port: number): Promise<void> =>
    new Promise((resolve) => {
      const server = createServer()
      servers.push(server)
      server.listen(port, '127.0.0.1', resolve)
    })

  async function qemu(dir: string, sshPort: number, forwards: ResolvedForward[]): Promise<number> {
    const rules = [`tcp:127.0.0.1:${sshPort}-:22`, ...forwards.map((f) => `${f.protocol}:${f.hostIp}:${f.host}-:${f.guest}`)]
    const pidfile = path.join(dir, `qemu-${sshPort}.pid`)
    const netdev = `user,id=n0${rules.map((rule) => `,hostfwd=${rule}`).join('')}`
    await runProgram('qemu-system-x86_64', [
      '-machine',
      'none',
      '-display',
      'none',
      '-nodefaults',
      '-netdev',
      netdev,
      '-daemonize',
      '-pidfile',
      pidfile,
    ])
    const pid = Number(readFileSync(pidfile, 'utf8').trim())
    pids.push(pid)
    return pid
  }

  it('a forwarded port is named with its protocol and the machine, not blamed on the SSH port', async () => {
    const leases = scratch()
    const ports = [forward(46411)]
    const forwards = await resolveForwards('web', ports, leases, 'a', () => {})
    let starts = 0
    const start = async (sshPort: number, current: ResolvedForward[]) => {
      starts++
      await grab(46411)
      return qemu(leases, sshPort, current)
    }
    await expect(
      startWithLeasedPorts({machine: 'web', leaseDir: leases, owner: 'a', forwards, ports, start, onCorrected: () => {}}),
    ).rejects.toThrow(
      'Host port 127.0.0.1:46411/tcp (forwarded to guest port 80 of machine web) was taken by another program while the machine was starting',
    )
    expect(starts).toBe(1)
    expect(readdirSync(leases).filter((file) => file.endsWith('.lease'))).toEqual([])
  })

  it('with auto_correct another leased port replaces it', async () => {
    const leases = scratch()
    const ports = [forward(46412, true)]
    const forwards = await resolveForwards('web', ports, leases, 'a', () => {})
    const said: string[] = []
    const start = async (sshPort: number, current: ResolvedForward[]) => {
      if (current[0]?.host === 46412) await grab(46412)
      return qemu(leases, sshPort, current)
    }
    const started = await startWithLeasedPorts({
      machine: 'web',
      leaseDir: leases,
      owner: 'a',
      forwards,
      ports,
      start,
      onCorrected: (text) => said.push(text),
    })
    expect(started.forwards[0]?.requested).toBe(46412)
    expect(started.forwards[0]?.host).toBeGreaterThanOrEqual(2200)
    expect(started.forwards[0]?.host).toBeLessThanOrEqual(2299)
    expect(said[0]).toMatch(
      /host port 46412 for guest port 80 was taken meanwhile; forwarding 127\.0\.0\.1:22\d\d instead \(auto_correct\)/,
    )
  })

  it('a clash on the SSH port takes the next SSH port', async () => {
    const leases = scratch()
    const tried: number[] = []
    const start = async (sshPort: number, current: ResolvedForward[]) => {
      tried.push(sshPort)
      if (tried.length === 1) await grab(sshPort)
      return qemu(leases, sshPort, current)
    }
    const started = await startWithLeasedPorts({
      machine: 'web',
      leaseDir: leases,
      owner: 'a',
      forwards: [],
      ports: [],
      start,
      onCorrected: () => {},
    })
    expect(tried).toHaveLength(2)
    expect(started.sshPort).toBe(tried[1])
    expect(tried[1]).not.toBe(tried[0])
  })
})
