import type {Writable} from 'node:stream'

import {ExternalError} from '../errors/errors.js'

/**
 * The one module that runs external programs. Argument arrays only, never a shell string.
 * A failed child becomes an ExternalError carrying the program, its arguments and the tail of
 * its stderr. cross-spawn is loaded lazily so commands that run nothing start fast.
 */
export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Text written to the child's stdin. */
  input?: string | Buffer
  /**
   * A question the child asks on stdout: when it prints the line `prompt`, `reply()` is written
   * to its stdin, which is then closed (instead of `input`). For answers that must be fresh when
   * the child reads them, such as the time. The prompt line is not part of the collected stdout.
   */
  answer?: Answer
  /**
   * The line the child prints last when it succeeds: once its stdout holds a whole line that
   * matches, the run resolves (status 0, the output so far) without waiting for the child to
   * exit, and the child is stopped (SIGTERM). For a program whose ending, once its work is done,
   * is slow and of no interest, such as an SSH session into a guest that is stopped next.
   */
  finalLine?: RegExp
  /** Milliseconds before the child is killed (SIGKILL) and the run fails. */
  timeoutMs?: number
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[]
  /** What to tell the user when the program is missing (ENOENT). */
  missingHint?: string
  /** Kills the child (SIGTERM) when aborted, e.g. on Ctrl-C. */
  signal?: AbortSignal | undefined
  /**
   * Open descriptors the child inherits as its descriptors 3, 4, ... (in this order), for a
   * program told to read or write one by number (QEMU's `-incoming fd:3`). The caller keeps and
   * closes its own.
   */
  passFds?: readonly number[] | undefined
}

export interface Answer {
  prompt: string
  reply(): string
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

const TAIL_LINES = 20

export function tailLines(text: string, lines = TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/** Runs a program to completion and collects its output; throws ExternalError on failure. */
export async function runProgram(program: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const {default: spawn} = await import('cross-spawn')
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe', ...(options.passFds ?? [])],
      signal: options.signal,
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            child.kill('SIGKILL')
          }, options.timeoutMs)
    const answer = options.answer
    let asked = false
    let finished = false
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const final = options.finalLine
      if (final !== undefined && !finished && final.test(stdout.slice(0, stdout.lastIndexOf('\n') + 1))) {
        finished = true
        if (timer) clearTimeout(timer)
        resolve({code: 0, stdout, stderr})
        child.kill('SIGTERM')
        return
      }
      if (answer === undefined || asked) return
      const at = `\n${stdout}`.indexOf(`\n${answer.prompt}\n`)
      if (at === -1) return
      asked = true
      stdout = stdout.slice(0, at) + stdout.slice(at + answer.prompt.length + 1)
      child.stdin?.end(answer.reply())
    })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer)
      const hint = error.code === 'ENOENT' ? (options.missingHint ?? `Install ${program} and make sure it is on PATH.`) : undefined
      reject(new ExternalError(`Cannot run ${program}: ${error.message}`, program, args, '', {cause: error, hint, code: 'PROGRAM_MISSING'}))
    })
    child.on('close', (code, signal) => {
      if (finished) return
      if (timer) clearTimeout(timer)
      const status = code ?? 128
      if (!timedOut && (options.okCodes ?? [0]).includes(status)) return resolve({code: status, stdout, stderr})
      const why = timedOut ? `timed out after ${options.timeoutMs} ms` : signal ? `was killed by ${signal}` : `exited with status ${status}`
      const tail = tailLines(stderr)
      reject(
        new ExternalError(`${program} ${why}`, program, args, tail, {
          details: [`command: ${[program, ...args].join(' ')}`, ...(tail === '' ? [] : tail.split('\n').map((line) => `| ${line}`))],
        }),
      )
    })
    // A child that exits before it reads its input (or asks its question) closes the pipe: its exit status says so, an EPIPE need not.
    child.stdin?.on('error', () => {})
    if (options.input !== undefined) child.stdin?.end(options.input)
    else if (options.answer === undefined) child.stdin?.end()
  })
}

/**
 * Runs a program attached to this terminal (stdin, stdout, stderr inherited) and resolves
 * with its exit status; used for interactive sessions such as `vm ssh`.
 */
export async function runAttached(program: string, args: readonly string[], options: {env?: NodeJS.ProcessEnv} = {}): Promise<number> {
  const {default: spawn} = await import('cross-spawn')
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], {stdio: 'inherit', env: options.env ?? process.env})
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(new ExternalError(`Cannot run ${program}: ${error.message}`, program, args, '', {cause: error, code: 'PROGRAM_MISSING'})),
    )
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => resolve(code ?? (signal === null ? 1 : 128 + 9)))
  })
}

export interface StreamOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /**
   * Fed to stdin: text, a readable stream, or a function handed the child's stdin pipe, e.g. to
   * make it another program's stdout so that the data never passes through Node (the function
   * must close its own handle on the pipe).
   */
  input?: string | Buffer | NodeJS.ReadableStream | ((stdin: Writable) => void)
  onStdout(line: string): void
  onStderr(line: string): void
}

/** Runs a program, handing each line of its stdout and stderr to callbacks as it comes. */
export async function runStreaming(program: string, args: readonly string[], options: StreamOptions): Promise<number> {
  const {default: spawn} = await import('cross-spawn')
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], {cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe']})
    const lines = (emit: (line: string) => void) => {
      let rest = ''
      return {
        data: (chunk: string) => {
          rest += chunk
          const parts = rest.split('\n')
          rest = parts.pop() ?? ''
          for (const part of parts) emit(part)
        },
        end: () => rest !== '' && emit(rest),
      }
    }
    const out = lines(options.onStdout)
    const err = lines(options.onStderr)
    child.stdout?.setEncoding('utf8').on('data', out.data)
    child.stderr?.setEncoding('utf8').on('data', err.data)
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(new ExternalError(`Cannot run ${program}: ${error.message}`, program, args, '', {cause: error, code: 'PROGRAM_MISSING'})),
    )
    child.on('close', (code: number | null) => {
      out.end()
      err.end()
      resolve(code ?? 128)
    })
    const input = options.input
    if (input === undefined) child.stdin?.end()
    else if (typeof input === 'string' || Buffer.isBuffer(input)) child.stdin?.end(input)
    else if (typeof input === 'function') input(child.stdin!)
    else {
      // A child that exits before reading all of its input (a remote command that failed)
      // closes the pipe: its exit status reports that, the EPIPE need not.
      child.stdin?.on('error', () => {})
      input.pipe(child.stdin!)
    }
  })
}

/**
 * Starts a program that outlives vm (a daemon such as a private network's switch): its own
 * session, no stdin, stdout and stderr appended to the open file `logFd`. Resolves once it
 * has been spawned (with its PID); vm does not wait for it.
 */
export async function spawnDetached(program: string, args: readonly string[], logFd: number): Promise<number> {
  const {spawn} = await import('node:child_process')
  return new Promise<number>((resolve, reject) => {
    const child = spawn(program, [...args], {detached: true, stdio: ['ignore', logFd, logFd]})
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(new ExternalError(`Cannot run ${program}: ${error.message}`, program, args, '', {cause: error, code: 'PROGRAM_MISSING'})),
    )
    child.once('spawn', () => {
      child.unref()
      resolve(child.pid!)
    })
  })
}
