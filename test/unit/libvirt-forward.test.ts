import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, connect, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {FORWARDER_FILE, forwarderCommand, startForwarder, stopForwarder} from '../../src/driver/libvirt/forward.js'
import {resolveForwards, type ResolvedForward} from '../../src/network/forwards.js'
import {processStartTime} from '../../src/state/process-check.js'

const tcp = (guest: number, host: number, hostIp = '127.0.0.1'): ResolvedForward => ({guest, host, hostIp, protocol: 'tcp'})

describe('libvirt forwarded ports: the keeper command', () => {
  it('goes through the libvirt host of a remote URI with ssh -N -L, failing when a port cannot be forwarded', () => {
    const {program, args} = forwarderCommand({
      guest: '192.168.124.17',
      jump: {host: 'build-3', user: 'ops', port: 2222},
      forwards: [tcp(80, 8080), tcp(443, 8443, '')],
    })
    expect(program).toBe('ssh')
    expect(args).toContain('ExitOnForwardFailure=yes')
    expect(args).toContain('BatchMode=yes')
    expect(args.slice(args.indexOf('-p'), args.indexOf('-p') + 2)).toEqual(['-p', '2222'])
    expect(args.slice(args.indexOf('-l'), args.indexOf('-l') + 2)).toEqual(['-l', 'ops'])
    const specs = args.flatMap((arg, i) => (args[i - 1] === '-L' ? [arg] : []))
    expect(specs).toEqual(['127.0.0.1:8080:192.168.124.17:80', '0.0.0.0:8443:192.168.124.17:443'])
    // The host comes last, after "--": never read as an option.
    expect(args.slice(-2)).toEqual(['--', 'build-3'])
    expect(args).not.toContain('-f')
  })

  it('brackets IPv6 addresses and leaves user and port to the ssh config when the URI names none', () => {
    const {args} = forwarderCommand({guest: 'fd00::5', jump: {host: 'h1'}, forwards: [tcp(22, 2022, '::1')]})
    expect(args).toContain('[::1]:2022:[fd00::5]:22')
    expect(args).not.toContain('-p')
    expect(args).not.toContain('-l')
  })

  it('refuses a jump host ssh would read as an option', () => {
    expect(() => forwarderCommand({guest: '10.0.0.2', jump: {host: '-oProxyCommand=x'}, forwards: [tcp(1, 2)]})).toThrow(/host/)
  })

  it('relays with a node process for a local URI (no ssh), every forward in one process', () => {
    const {program, args} = forwarderCommand({guest: '192.168.124.9', jump: undefined, forwards: [tcp(80, 8080), tcp(81, 8081, '')]})
    expect(program).toBe(process.execPath)
    expect(args.slice(args.indexOf('--') + 1)).toEqual([
      '127.0.0.1',
      '8080',
      '192.168.124.9',
      '80',
      '0.0.0.0',
      '8081',
      '192.168.124.9',
      '81',
    ])
  })
})

describe('libvirt forwarded ports: the local relay keeper', () => {
  let dir: string
  let guest: Server
  let guestPort: number
  let hostPort: number

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vm-forward-'))
    guest = createServer((socket) => socket.end('hello from the guest\n'))
    await new Promise<void>((resolve) => guest.listen(0, '127.0.0.1', resolve))
    guestPort = (guest.address() as {port: number}).port
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    hostPort = (probe.address() as {port: number}).port
    await new Promise((resolve) => probe.close(resolve))
  })

  afterAll(async () => {
    await new Promise((resolve) => guest.close(resolve))
    rmSync(dir, {recursive: true, force: true})
  })

  const read = (port: number): Promise<string> =>
    new Promise((resolve, reject) => {
      let text = ''
      const socket = connect(port, '127.0.0.1')
      socket.on('data', (chunk) => (text += chunk.toString()))
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })

  it('listens on the host port, reaches the guest, holds the lease, and stop ends it and gives the lease back', async () => {
    const machine = {name: 'web', id: 'abc123', dir}
    const leases = path.join(dir, 'leases')
    const forwards = await resolveForwards(
      'web',
      [{guest: guestPort, host: hostPort, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: false}],
      leases,
      machine.id,
      () => {},
    )
    await startForwarder(machine, {guest: '127.0.0.1', jump: undefined, forwards}, leases)
    const state = JSON.parse(readFileSync(path.join(dir, FORWARDER_FILE), 'utf8')) as {pid: number}
    expect(processStartTime(state.pid)).toBeDefined()
    expect(await read(hostPort)).toBe('hello from the guest\n')
    const lease = readdirSync(leases).find((file) => file.includes(String(hostPort)))!
    expect(readFileSync(path.join(leases, lease), 'utf8')).toContain(String(state.pid))
    await stopForwarder(machine, leases)
    expect(processStartTime(state.pid)).toBeUndefined()
    expect(existsSync(path.join(dir, FORWARDER_FILE))).toBe(false)
    expect(readdirSync(leases).filter((file) => file.includes(String(hostPort)))).toEqual([])
  })

  it('ends itself and its ports once the domain it watches is gone (virsh event, then domstate)', async () => {
    // A stand-in for virsh: the domain runs until the file "stopped" exists; then it is shut off
    // and the event stream says so, as libvirt does when a domain is destroyed behind vm's back.
    const virsh = path.join(dir, 'virsh')
    const stopped = path.join(dir, 'stopped')
    writeFileSync(
      virsh,
      [
        '#!/bin/sh',
        'case "$*" in',
        `  *" event "*) while [ ! -e '${stopped}' ]; do sleep 0.1; done; echo "event 'lifecycle' for domain 'vm-web': Stopped Destroyed"; exec sleep 30 ;;`,
        `  *" domstate "*) if [ -e '${stopped}' ]; then echo 'shut off'; else echo running; fi ;;`,
        '  *) exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
      {mode: 0o755},
    )
    const machine = {name: 'web', id: 'abc125', dir}
    const leases = path.join(dir, 'leases3')
    const forwards = await resolveForwards(
      'web',
      [{guest: guestPort, host: hostPort, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: false}],
      leases,
      machine.id,
      () => {},
    )
    const saved = process.env.VM_VIRSH
    process.env.VM_VIRSH = virsh
    try {
      await startForwarder(
        machine,
        {guest: '127.0.0.1', jump: undefined, forwards, domain: {uri: 'qemu:///system', name: 'vm-web'}},
        leases,
      )
    } finally {
      if (saved === undefined) delete process.env.VM_VIRSH
      else process.env.VM_VIRSH = saved
    }
    const state = JSON.parse(readFileSync(path.join(dir, FORWARDER_FILE), 'utf8')) as {pid: number}
    expect(await read(hostPort)).toBe('hello from the guest\n')
    // While the domain runs, the keeper stays.
    await sleep(2500)
    expect(processStartTime(state.pid)).toBeDefined()
    writeFileSync(stopped, '')
    const deadline = Date.now() + 15_000
    while (processStartTime(state.pid) !== undefined && Date.now() < deadline) await sleep(100)
    expect(processStartTime(state.pid)).toBeUndefined()
    await expect(read(hostPort)).rejects.toThrow(/ECONNREFUSED/)
    expect(readFileSync(path.join(dir, 'forwarder.log'), 'utf8')).toContain('domain vm-web is no longer running')
    // Nothing of the keeper is left: no event stream, no relay.
    expect(spawnSync('pgrep', ['-f', stopped]).stdout.toString()).toBe('')
    await stopForwarder(machine, leases)
    expect(readdirSync(leases).filter((file) => file.includes(String(hostPort)))).toEqual([])
  }, 30_000)

  it('refuses a taken port before any keeper starts', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as {port: number}).port
    try {
      await expect(
        resolveForwards(
          'web',
          [{guest: 80, host: port, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: false}],
          path.join(dir, 'l3'),
          'x',
          () => {},
        ),
      ).rejects.toThrow(/already in use/)
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
  })

  it('fails with what ssh said when the libvirt host cannot be reached, leaving no keeper and no lease', async () => {
    const machine = {name: 'web', id: 'abc124', dir}
    const leases = path.join(dir, 'leases2')
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const sshPort = (closed.address() as {port: number}).port
    await new Promise((resolve) => closed.close(resolve))
    const forwards = await resolveForwards(
      'web',
      [{guest: 80, host: hostPort, hostIp: '127.0.0.1', protocol: 'tcp', autoCorrect: false}],
      leases,
      machine.id,
      () => {},
    )
    const failure = startForwarder(machine, {guest: '192.168.124.9', jump: {host: '127.0.0.1', port: sshPort}, forwards}, leases, 10_000)
    await expect(failure).rejects.toThrow(/Cannot forward host port .* through 127.0.0.1/)
    await expect(failure.catch((error: {hint?: string}) => Promise.reject(new Error(error.hint)))).rejects.toThrow(/Connection refused/)
    expect(existsSync(path.join(dir, FORWARDER_FILE))).toBe(false)
    expect(readdirSync(leases).filter((file) => file.endsWith('.lease'))).toEqual([])
  })
})
