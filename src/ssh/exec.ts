import {runAttached, runProgram, runStreaming, type RunResult, type StreamOptions} from '../process/run.js'
import {sshArgs, type SshTarget} from './options.js'

/**
 * The one way vm runs a command in a guest: OpenSSH with the machine's target (its key, its
 * pinned host key, the endpoint its driver returned). `command` is a shell command line the
 * guest's login shell runs, as `ssh host command` passes it.
 */

export interface GuestCommandOptions {
  /** Fed to the command's stdin. */
  input?: string | Buffer
  timeoutMs?: number
  /** Seconds ssh waits for the connection (ConnectTimeout). */
  connectTimeout?: number
  signal?: AbortSignal | undefined
  /** Exit statuses that count as success (default: 0 only). */
  okCodes?: number[]
}

/** Runs `command` without a terminal and collects its output; a failure is an ExternalError naming ssh and the command. */
export async function runInGuest(target: SshTarget, command: string, options: GuestCommandOptions = {}): Promise<RunResult> {
  return runProgram('ssh', [...sshArgs(target, {batch: true, connectTimeout: options.connectTimeout}), command], {
    input: options.input,
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    okCodes: options.okCodes,
  })
}

/** Runs `command` and hands each line of its output to the callbacks as it comes; resolves with its exit status. */
export async function streamInGuest(target: SshTarget, command: string, options: Omit<StreamOptions, 'cwd' | 'env'>): Promise<number> {
  return runStreaming('ssh', [...sshArgs(target, {batch: true}), command], options)
}

/**
 * Runs ssh attached to this terminal: a login shell, or `command`. `sshOptions` are passed to
 * ssh itself (before the host), e.g. `-L 9001:localhost:80 -N`. Resolves with ssh's exit status.
 */
export async function attachToGuest(
  target: SshTarget,
  command: string | undefined,
  options: {tty?: boolean; sshOptions?: readonly string[]} = {},
): Promise<number> {
  const args = sshArgs(target, {tty: options.tty})
  args.splice(args.length - 1, 0, ...(options.sshOptions ?? []))
  return runAttached('ssh', command === undefined ? args : [...args, command])
}

/** Whether the guest accepts the target's key now (a single batch login that runs `true`). */
export async function guestAcceptsKey(target: SshTarget, signal?: AbortSignal): Promise<boolean> {
  try {
    await runInGuest(target, 'true', {connectTimeout: 5, timeoutMs: 30_000, signal})
    return true
  } catch {
    return false
  }
}

/** The ssh program and options (no host) for tools that run ssh themselves: rsync -e, ansible. */
export function sshCommandLine(target: SshTarget): string[] {
  return ['ssh', ...sshArgs(target, {batch: true}).slice(0, -1)]
}
