import {readFile} from 'node:fs/promises'
import net from 'node:net'

import {driverOf} from '../driver/registry.js'
import {UserError} from '../errors/errors.js'
import {machinePaths} from '../state/machine-files.js'
import type {MachineState} from '../state/machine-state.js'
import {inspectMachine} from './inspect.js'

/**
 * vm console: a machine's serial console, live through the socket its engine keeps beside the
 * console's log, or the log so far. The socket accepts one client at a time.
 */

/** The byte that detaches from the console: Ctrl-], as telnet and virsh console use. */
export const DETACH_BYTE = 0x1d
export const DETACH_KEY = 'Ctrl-]'

async function serialConsole(projectDir: string, name: string) {
  const {status, record, unreadable} = await inspectMachine(projectDir, name)
  if (unreadable !== undefined) throw unreadable
  const driver = await driverOf(record)
  const paths = machinePaths(projectDir, name)
  const found = await driver.serialConsole?.({name, dir: paths.dir, id: record?.id, record})
  return {state: status.state, socket: found?.socket, log: found?.log, attach: found?.attach, readLog: found?.readLog, driver}
}

/**
 * How to join a running machine's console: its socket, or the program its engine gives for a
 * console that is elsewhere (a remote libvirt host); a clear error when it does not run or has none.
 */
export async function consoleSocket(projectDir: string, name: string): Promise<string | {program: string; args: string[]}> {
  const {state, socket, attach, driver} = await serialConsole(projectDir, name)
  if (state !== 'running') {
    throw new UserError(`Machine ${name} is not running (state: ${state}): its serial console is not there to attach to`, {
      code: 'NOT_RUNNING',
      hint: `Run "vm up ${name}" first, or "vm console --log ${name}" to read what it printed last time.`,
    })
  }
  if (socket === undefined && attach !== undefined) return attach
  if (socket === undefined) {
    throw new UserError(`Machine ${name}'s ${driver.displayName} has no console socket (it was started by an older vm)`, {
      code: 'NO_CONSOLE',
      hint: `Run "vm reload ${name}" to restart it with one; "vm console --log ${name}" reads its log meanwhile.`,
    })
  }
  return socket
}

/** What the machine's serial console printed since it last started ('' before any output). */
export async function consoleLog(projectDir: string, name: string): Promise<{state: MachineState; log: string}> {
  const {state, log, readLog} = await serialConsole(projectDir, name)
  if (state === 'not_created') {
    throw new UserError(`Machine ${name} was never created: it has no console log`, {
      code: 'NOT_CREATED',
      hint: `Run "vm up ${name}" first.`,
    })
  }
  if (readLog !== undefined) return {state, log: await readLog()}
  if (log === undefined) return {state, log: ''}
  try {
    return {state, log: await readFile(log, 'utf8')}
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {state, log: ''}
    throw error
  }
}

/** Runs an engine's console program (consoleSocket's other answer) on this terminal; resolves with its exit status. */
export async function runConsoleProgram(attach: {program: string; args: string[]}): Promise<number> {
  const {runAttached} = await import('../process/run.js')
  return runAttached(attach.program, attach.args)
}

export type ConsoleEnd = 'closed' | 'detached'

/**
 * Joins `input` and `output` to the console socket until the detach byte comes in (resolves
 * 'detached'; nothing after it is sent), the input ends (also 'detached'), or the machine
 * closes the console (resolves 'closed'). `onAttach` runs once connected.
 */
export function pipeConsole(
  socketPath: string,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  onAttach: () => void,
): Promise<ConsoleEnd> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath)
    let settled = false
    const finish = (end: ConsoleEnd | Error): void => {
      if (settled) return
      settled = true
      input.off('data', onData)
      input.off('end', onEnd)
      socket.unpipe()
      socket.destroy()
      if (end instanceof Error) reject(end)
      else resolve(end)
    }
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      const at = bytes.indexOf(DETACH_BYTE)
      if (at < 0) {
        socket.write(bytes)
        return
      }
      if (at > 0) socket.write(bytes.subarray(0, at))
      finish('detached')
    }
    const onEnd = (): void => finish('detached')
    socket.once('connect', () => {
      onAttach()
      socket.pipe(output as NodeJS.WritableStream & {write: (chunk: Buffer) => boolean}, {end: false})
      input.on('data', onData)
      input.once('end', onEnd)
      input.resume()
    })
    socket.once('close', () => finish('closed'))
    socket.once('error', (error) =>
      finish(
        new UserError(`Cannot attach to the console socket ${socketPath}: ${error.message}`, {
          code: 'CONSOLE_UNAVAILABLE',
          hint: 'Check that the machine runs ("vm status"); only one client can attach at a time.',
        }),
      ),
    )
  })
}
