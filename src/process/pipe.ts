import {spawn} from 'node:child_process'
import {Duplex, Readable, type Writable} from 'node:stream'

import {ExternalError} from '../errors/errors.js'
import {tailLines} from './run.js'

/**
 * A program used as a stream filter (`zstd -dc`, `xz -dc`): bytes written go to its stdin,
 * its stdout is read. A non-zero exit destroys the stream with an ExternalError carrying the
 * tail of stderr. Argument arrays only; cross-spawn underneath like run.ts.
 */
export async function spawnFilter(program: string, args: readonly string[], missingHint?: string): Promise<Duplex> {
  const {default: spawn} = await import('cross-spawn')
  const child = spawn(program, [...args], {stdio: ['pipe', 'pipe', 'pipe']})
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  let failure: Error | undefined
  const exited = new Promise<void>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure = new ExternalError(`Cannot run ${program}: ${error.message}`, program, args, '', {
        cause: error,
        code: 'PROGRAM_MISSING',
        hint: error.code === 'ENOENT' ? (missingHint ?? `Install ${program} and make sure it is on PATH.`) : undefined,
      })
      resolve()
    })
    child.on('close', (code, signal) => {
      if (code !== 0 && failure === undefined) {
        const tail = tailLines(stderr)
        const why = signal ? `was killed by ${signal}` : `exited with status ${code}`
        failure = new ExternalError(`${program} ${why}: ${tail.split('\n').at(-1) ?? ''}`, program, args, tail)
      }
      resolve()
    })
  })
  // The output ends only once the exit status is known, so a failing program is never
  // mistaken for a short but complete stream.
  async function* output(): AsyncIterable<Buffer> {
    for await (const chunk of child.stdout!) yield chunk as Buffer
    await exited
    if (failure !== undefined) throw failure
  }
  // The writable side can fail with EPIPE when the program exits early; its exit status says why.
  child.stdin?.on('error', () => {})
  const duplex = Duplex.from({writable: child.stdin!, readable: Readable.from(output())})
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM')
  })
  return duplex
}

/** A program writing into a pipe that another program reads (see `spawnIntoPipe`). */
export interface PipedProgram {
  /** Its exit status (127 when it could not be run; the reason is in `stderr`). */
  status: Promise<number>
  /** What it wrote to stderr so far. */
  stderr(): string
  /** Stops it, when it still runs. */
  stop(): void
}

/**
 * Runs a program whose stdout is `output` (e.g. another program's stdin pipe), so the bytes go
 * from one program to the other without passing through Node. Argument arrays only.
 */
export function spawnIntoPipe(program: string, args: readonly string[], output: Writable): PipedProgram {
  const child = spawn(program, [...args], {stdio: ['ignore', output, 'pipe']})
  let messages = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (messages += chunk))
  const status = new Promise<number>((resolve) => {
    child.on('error', (error) => {
      messages += `cannot run ${program}: ${error.message}\n`
      resolve(127)
    })
    child.on('close', (code) => resolve(code ?? 128))
  })
  return {
    status,
    stderr: () => messages,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill()
    },
  }
}
