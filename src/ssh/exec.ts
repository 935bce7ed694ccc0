import type {Duplex} from 'node:stream'

import {ExternalError} from '../errors/errors.js'
import {spawnFilter} from '../process/pipe.js'
import {runAttached, runProgram, runStreaming, tailLines, type Answer, type RunResult, type StreamOptions} from '../process/run.js'
import {prepareControlPath} from './master.js'
import {sshArgs, type SshTarget} from './options.js'

/**
 * The one way vm runs a command in a guest: OpenSSH with the machine's target (its key, its
 * pinned host key, the endpoint its driver returned). `command` is a shell command line the
 * guest's login shell runs, as `ssh host command` passes it.
 *
 * Commands share one connection per machine (see master.ts) unless told not to (`shared:
 * false`: a login that must prove the key itself, such as waiting for the first boot). A
 * command whose shared connection broke before it started is run again over a connection of
 * its own (see lostSession), and ssh itself connects directly when the master's socket is stale.
 */

export interface GuestCommandOptions {
  /** Fed to the command's stdin. */
  input?: string | Buffer
  /** A question the command asks on stdout, answered on its stdin when asked (see RunOptions). */
  answer?: Answer
  /** The line the command prints last: the run ends once it is there (see RunOptions). */
  finalLine?: RegExp
  timeoutMs?: number
  /** Seconds ssh waits for the connection (ConnectTimeout). */
  connectTimeout?: number
  signal?: AbortSignal | undefined
  /** Exit statuses that count as success (default: 0 only). */
  okCodes?: number[]
  /** Whether the command may use the machine's shared connection (default: yes). */
  shared?: boolean
}

/** ssh's own failure status: the connection, not the command, failed. */
const SSH_FAILED = 255

/**
 * Whether a run over the shared connection lost its session: ssh failed (255) without a word
 * on stderr and the command printed nothing. Every failure of ssh itself (refused, timed out,
 * key or host key rejected) says why at LogLevel ERROR; only a session that the master lost
 * ends silently (the master died, or the guest's sshd dropped the channel without an exit
 * status, as dropbear does when sessions on one connection end at the same moment). Such a
 * command is run once more over a connection of its own.
 */
export function lostSession(code: number, stdout: string, stderr: string): boolean {
  return code === SSH_FAILED && stdout === '' && stderr.trim() === ''
}

async function controlPath(target: SshTarget, shared: boolean | undefined): Promise<string> {
  if (shared === false) return 'none'
  return (await prepareControlPath(target)) ?? 'none'
}

/** Runs `command` without a terminal and collects its output; a failure is an ExternalError naming ssh and the command. */
export async function runInGuest(target: SshTarget, command: string, options: GuestCommandOptions = {}): Promise<RunResult> {
  const okCodes = options.okCodes ?? [0]
  const run = async (control: string): Promise<RunResult> =>
    runProgram('ssh', [...sshArgs(target, {batch: true, connectTimeout: options.connectTimeout, controlPath: control}), command], {
      input: options.input,
      answer: options.answer,
      finalLine: options.finalLine,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      okCodes: control === 'none' ? okCodes : [...okCodes, SSH_FAILED],
    })
  const control = await controlPath(target, options.shared)
  const result = await run(control)
  if (control === 'none' || okCodes.includes(result.code) || result.code !== SSH_FAILED) return result
  if (lostSession(result.code, result.stdout, result.stderr)) return run('none')
  const args = [...sshArgs(target, {batch: true, connectTimeout: options.connectTimeout, controlPath: control}), command]
  const tail = tailLines(result.stderr)
  throw new ExternalError(`ssh exited with status ${SSH_FAILED}`, 'ssh', args, tail, {
    details: [`command: ${['ssh', ...args].join(' ')}`, ...(tail === '' ? [] : tail.split('\n').map((line) => `| ${line}`))],
  })
}

/**
 * Runs `command` and hands each line of its output to the callbacks as it comes; resolves with
 * its exit status. Run again without the shared connection when that broke before any output
 * (only when the input can be fed twice: none, text or bytes).
 */
export async function streamInGuest(
  target: SshTarget,
  command: string,
  options: Omit<StreamOptions, 'cwd' | 'env'> & {shared?: boolean},
): Promise<number> {
  const control = await controlPath(target, options.shared)
  const replayable = options.input === undefined || typeof options.input === 'string' || Buffer.isBuffer(options.input)
  let said = false
  const code = await runStreaming('ssh', [...sshArgs(target, {batch: true, controlPath: control}), command], {
    input: options.input,
    onStdout: (line) => {
      said = true
      options.onStdout(line)
    },
    onStderr: (line) => {
      said = true
      options.onStderr(line)
    },
  })
  if (control !== 'none' && replayable && !said && lostSession(code, '', '')) {
    return runStreaming('ssh', [...sshArgs(target, {batch: true, controlPath: 'none'}), command], options)
  }
  return code
}

/**
 * Runs `command` in the guest as a stream filter: bytes written go to its stdin, its stdout is
 * read (for copies: `cat > FILE`, `tar -c`). A failure destroys the stream with an
 * ExternalError carrying what the command (or ssh) said on stderr.
 */
export async function guestStream(target: SshTarget, command: string): Promise<Duplex> {
  const control = await controlPath(target, true)
  return spawnFilter('ssh', [...sshArgs(target, {batch: true, controlPath: control}), command])
}

export interface AttachOptions {
  /** A terminal for the session: true: -t (when this one is a terminal), 'force': -tt. */
  tty?: boolean | 'force'
  /** Passed to ssh itself (before the host), e.g. `-L 9001:localhost:80 -N`; such a session gets a connection of its own. */
  sshOptions?: readonly string[]
}

/**
 * Runs ssh attached to this terminal: a login shell, or `command`. Resolves with ssh's exit
 * status. Options of the user's own (forwards, -N) need a connection of their own: a shared
 * one would keep them in the background master after this session ends.
 */
export async function attachToGuest(target: SshTarget, command: string | undefined, options: AttachOptions = {}): Promise<number> {
  const own = (options.sshOptions ?? []).length > 0
  const args = sshArgs(target, {tty: options.tty, controlPath: await controlPath(target, !own)})
  args.splice(args.length - 1, 0, ...(options.sshOptions ?? []))
  return runAttached('ssh', command === undefined ? args : [...args, command])
}

/** Whether the guest accepts the target's key now (a single batch login that runs `true`, never over a shared connection). */
export async function guestAcceptsKey(target: SshTarget, signal?: AbortSignal): Promise<boolean> {
  try {
    await runInGuest(target, 'true', {connectTimeout: 5, timeoutMs: 30_000, signal, shared: false})
    return true
  } catch {
    return false
  }
}

/** The ssh program and options (no host) for tools that run ssh themselves: rsync -e, ansible. */
export function sshCommandLine(target: SshTarget): string[] {
  return ['ssh', ...sshArgs(target, {batch: true}).slice(0, -1)]
}
