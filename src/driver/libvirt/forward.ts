import {closeSync, openSync} from 'node:fs'
import {readFile, rm} from 'node:fs/promises'
import {connect} from 'node:net'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {UserError} from '../../errors/errors.js'
import {releaseForwards, type ResolvedForward} from '../../network/forwards.js'
import {transferLease} from '../../network/ports.js'
import {spawnDetached} from '../../process/run.js'
import {renderProxyJump, type JumpHost} from '../../ssh/options.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import {processStartTime} from '../../state/process-check.js'

/**
 * forwarded_ports of libvirt machines. A guest on a libvirt NAT network has its own address,
 * reachable from the libvirt host only, so vm keeps one detached process per machine that
 * listens on this host's forwarded ports and connects each connection to GUEST_IP:GUEST_PORT:
 *
 * - remote URIs (qemu+ssh://...): `ssh -N -L` to the libvirt host, which opens the connection
 *   to the guest; ssh authenticates as virsh does (the user's ssh config and agent), and needs
 *   neither the guest's sshd nor its key, so it starts as soon as the guest's address is known;
 * - local URIs: the guest's address is routed on this host, so a small TCP relay (node, no
 *   ssh) connects to it directly; no sshd has to run on this host.
 *
 * Only TCP: ssh cannot forward UDP. The keeper's PID, start time and ports are in
 * FORWARDER_FILE in the machine's directory; the port leases are handed to it, so they stay
 * held exactly as long as it runs.
 */
export const FORWARDER_FILE = 'forwarder.json'
/** The keeper's output (ssh's errors), appended. */
export const FORWARDER_LOG = 'forwarder.log'

export interface ForwarderSpec {
  /** The guest's address as the libvirt host sees it. */
  guest: string
  /** The libvirt host to go through (remote URIs); none: relay on this host. */
  jump: JumpHost | undefined
  forwards: readonly ResolvedForward[]
  /** The domain whose ports these are: the keeper ends itself once it is gone (see KEEPER_SOURCE). */
  domain?: WatchedDomain | undefined
}

/** A libvirt domain a keeper watches. */
export interface WatchedDomain {
  uri: string
  name: string
}

interface ForwarderState {
  pid: number
  startTime: string
  forwards: ResolvedForward[]
}

/** The address a forward listens on: its host_ip; an empty one means every IPv4 address. */
function listenAddress(forward: ResolvedForward): string {
  return forward.hostIp === '' ? '0.0.0.0' : forward.hostIp
}

const bracket = (address: string): string => (address.includes(':') ? `[${address}]` : address)

/** Refuses what the keeper cannot forward (UDP), naming the port. */
export function checkForwards(machine: string, forwards: readonly ResolvedForward[]): void {
  const udp = forwards.find((forward) => forward.protocol !== 'tcp')
  if (udp !== undefined)
    throw new UserError(`Machine ${machine} forwards UDP port ${udp.guest}, which the libvirt engine cannot forward (TCP only)`, {
      code: 'UNSUPPORTED',
      hint: 'Remove the UDP forwarded port from the Vmfile, or use the qemu engine for this machine.',
    })
}

/** The one-line TCP relay a local keeper runs: `node -e RELAY -- LISTEN_IP LISTEN_PORT GUEST_IP GUEST_PORT ...`. */
export const RELAY_SOURCE = [
  "const net = require('node:net')",
  "process.title = 'vm-port-relay'",
  'const a = process.argv.slice(1)',
  'for (let i = 0; i + 3 < a.length; i += 4) {',
  '  const [ip, port, guest, guestPort] = a.slice(i, i + 4)',
  '  net.createServer((c) => {',
  '    const g = net.connect(Number(guestPort), guest)',
  "    c.pipe(g); g.pipe(c); c.on('error', () => g.destroy()); g.on('error', () => c.destroy())",
  "  }).on('error', (e) => { console.error(`${ip}:${port}: ${e.message}`); process.exit(1) }).listen(Number(port), ip)",
  '}',
].join('\n')

/**
 * The keeper: `node -e KEEPER -- JSON`, JSON being {program, args, watch?}. It runs the forwarder
 * (ssh -N -L, or the relay) as its child and lives exactly as long as it: it ends when the
 * forwarder ends, and on SIGTERM it ends the forwarder first. With `watch` ({virsh, uri,
 * domain}) it also follows the domain's lifecycle events (`virsh event --loop`, one connection
 * to the libvirt host while the domain runs) and, when an event comes, the event stream ends
 * or it starts, asks `virsh domstate`: a domain that is shut off, crashed or gone (asked twice,
 * 3 s apart, so that a snapshot revert that restarts QEMU does not count) ends the keeper and
 * its ports. A host that cannot be asked proves nothing: the watch starts again later.
 */
export const KEEPER_SOURCE = [
  "const {spawn, execFile} = require('node:child_process')",
  "process.title = 'vm-port-keeper'",
  'const spec = JSON.parse(process.argv[1])',
  "const child = spawn(spec.program, spec.args, {stdio: ['ignore', 'inherit', 'inherit']})",
  'let ending = false',
  'let events',
  'const end = (code) => {',
  '  if (ending) return',
  '  ending = true',
  "  if (events) events.kill('SIGTERM')",
  "  if (child.exitCode === null && child.signalCode === null) { child.once('exit', () => process.exit(code)); child.kill('SIGTERM'); setTimeout(() => process.exit(code), 3000).unref() }",
  '  else process.exit(code)',
  '}',
  "child.on('exit', (code, signal) => { if (!ending) { ending = true; if (events) events.kill('SIGTERM'); process.exit(code ?? (signal ? 1 : 0)) } })",
  "child.on('error', (e) => { console.error(`${spec.program}: ${e.message}`); ending = true; process.exit(1) })",
  "for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => end(0))",
  'const w = spec.watch',
  'if (w) {',
  "  const env = {...process.env, LC_ALL: 'C'}",
  "  const virsh = (args) => new Promise((resolve) => execFile(w.virsh, ['-q', '-c', w.uri, ...args], {env, timeout: 60000}, (error, stdout, stderr) => resolve({error, stdout: String(stdout), stderr: String(stderr)})))",
  '  // gone: shut off, crashed or no such domain; undefined: it runs, or the host cannot be asked.',
  '  const gone = async () => {',
  "    const r = await virsh(['domstate', w.domain])",
  '    if (!r.error) return /^\\s*(shut off|crashed)/.test(r.stdout)',
  '    return /Domain not found|failed to get domain/i.test(r.stderr)',
  '  }',
  '  let checking = false',
  '  const check = async () => {',
  '    if (checking || ending) return',
  '    checking = true',
  '    try {',
  '      if (await gone()) { await new Promise((r) => setTimeout(r, 3000)); if (await gone()) { console.error(`domain ${w.domain} is no longer running: the forwarded ports end`); end(0) } }',
  '    } finally { checking = false }',
  '  }',
  '  let delay = 2000',
  '  const watch = () => {',
  '    if (ending) return',
  "    events = spawn(w.virsh, ['-q', '-c', w.uri, 'event', '--domain', w.domain, '--event', 'lifecycle', '--loop'], {env, stdio: ['ignore', 'pipe', 'ignore']})",
  "    events.on('error', () => {})",
  "    events.stdout.on('data', () => { delay = 2000; check() })",
  "    events.on('exit', () => { events = undefined; check().then(() => { setTimeout(watch, delay).unref(); delay = Math.min(delay * 2, 60000) }) })",
  '    // Whatever happened before the stream was there: asked once it is.',
  '    setTimeout(check, 1000).unref()',
  '  }',
  '  watch()',
  '}',
].join('\n')

/** The keeper's program and arguments for `spec` (see KEEPER_SOURCE): a pure function of the spec. */
export function keeperCommand(spec: ForwarderSpec, virsh = process.env.VM_VIRSH ?? 'virsh'): {program: string; args: string[]} {
  const forwarder = forwarderCommand(spec)
  const watch = spec.domain === undefined ? undefined : {virsh, uri: spec.domain.uri, domain: spec.domain.name}
  return {program: process.execPath, args: ['-e', KEEPER_SOURCE, '--', JSON.stringify({...forwarder, watch})]}
}

/** The forwarder's program and arguments: a pure function of the spec. */
export function forwarderCommand(spec: ForwarderSpec): {program: string; args: string[]} {
  if (spec.jump === undefined) {
    const args = spec.forwards.flatMap((forward) => [listenAddress(forward), String(forward.host), spec.guest, String(forward.guest)])
    return {program: process.execPath, args: ['-e', RELAY_SOURCE, '--', ...args]}
  }
  // renderProxyJump checks user, host and port as strict names; the same values go to -l/-p.
  renderProxyJump(spec.jump)
  const args = [
    '-N',
    '-T',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=15',
    '-o',
    'ServerAliveInterval=15',
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'ControlPath=none',
    '-o',
    'ClearAllForwardings=no',
  ]
  if (spec.jump.port !== undefined) args.push('-p', String(spec.jump.port))
  if (spec.jump.user !== undefined) args.push('-l', spec.jump.user)
  for (const forward of spec.forwards)
    args.push('-L', `${bracket(listenAddress(forward))}:${forward.host}:${bracket(spec.guest)}:${forward.guest}`)
  args.push('--', spec.jump.host)
  return {program: 'ssh', args}
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
}

function alive(state: ForwarderState): boolean {
  return processStartTime(state.pid) === state.startTime
}

async function readState(dir: string): Promise<ForwarderState | undefined> {
  try {
    const data = JSON.parse(await readFile(path.join(dir, FORWARDER_FILE), 'utf8')) as ForwarderState
    return Number.isInteger(data.pid) && typeof data.startTime === 'string' && Array.isArray(data.forwards) ? data : undefined
  } catch {
    return undefined
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host, port, timeout: 1000})
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
    socket.once('timeout', () => done(false))
  })
}

async function logTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-5).join('\n')
}

export interface ForwarderMachine {
  name: string
  id: string
  dir: string
}

/**
 * Starts the machine's keeper for `spec.forwards`, whose ports this process has leased
 * (resolveForwards), and resolves once every port listens; the leases then belong to the
 * keeper. A keeper left from an earlier boot is stopped first. On failure the leases are
 * released and the error says what ssh (or the relay) said.
 */
export async function startForwarder(machine: ForwarderMachine, spec: ForwarderSpec, leaseDir: string, timeoutMs = 30_000): Promise<void> {
  await stopForwarder(machine, leaseDir)
  if (spec.forwards.length === 0) return
  try {
    checkForwards(machine.name, spec.forwards)
    const {program, args} = keeperCommand(spec)
    const logFile = path.join(machine.dir, FORWARDER_LOG)
    await rm(logFile, {force: true})
    const log = openSync(logFile, 'a', 0o600)
    let pid: number
    try {
      pid = await spawnDetached(program, args, log)
    } finally {
      closeSync(log)
    }
    const startTime = processStartTime(pid)
    if (startTime !== undefined)
      await writeFileAtomic(path.join(machine.dir, FORWARDER_FILE), `${JSON.stringify({pid, startTime, forwards: spec.forwards})}\n`, {
        mode: 0o600,
      })
    const deadline = Date.now() + timeoutMs
    for (const forward of spec.forwards) {
      const probe = listenAddress(forward) === '0.0.0.0' ? '127.0.0.1' : listenAddress(forward)
      while (!(await accepts(probe, forward.host))) {
        if (processStartTime(pid) !== startTime || Date.now() > deadline) {
          await stopForwarder(machine, leaseDir)
          throw new UserError(
            `Cannot forward host port ${forward.host} to guest port ${forward.guest} of machine ${machine.name}${spec.jump === undefined ? '' : ` through ${spec.jump.host}`}`,
            {
              code: 'FORWARD_FAILED',
              hint: `${(await logTail(logFile)) || 'The port forwarder did not start listening.'}\nCheck that the port is free${spec.jump === undefined ? '' : ` and that "ssh ${renderProxyJump(spec.jump)}" logs in without a password`}.`,
            },
          )
        }
        await sleep(100)
      }
    }
    for (const forward of spec.forwards)
      await transferLease(leaseDir, forward.host, machine.id, pid, {protocol: 'tcp', hostIp: forward.hostIp})
  } catch (error) {
    await releaseForwards(leaseDir, machine.id, spec.forwards)
    throw error
  }
}

/** Stops the machine's keeper (if it runs) and gives back its port leases; safe to call at any time. */
export async function stopForwarder(machine: ForwarderMachine, leaseDir: string): Promise<void> {
  const state = await readState(machine.dir)
  if (state === undefined) return
  if (alive(state)) {
    try {
      process.kill(state.pid, 'SIGTERM')
    } catch {
      // gone meanwhile
    }
    for (let i = 0; i < 50 && alive(state); i++) await sleep(50)
    // The keeper leads its own process group (it was started detached): its forwarder goes with it.
    if (alive(state)) killGroup(state.pid)
  }
  await releaseForwards(leaseDir, machine.id, state.forwards)
  await rm(path.join(machine.dir, FORWARDER_FILE), {force: true})
}
