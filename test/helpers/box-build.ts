import {execFile, spawn} from 'node:child_process'
import {createWriteStream, mkdirSync} from 'node:fs'
import path from 'node:path'

import {type BoxBuildsOutcome, repoRoot, writeBoxBuildsOutcome} from './built-boxes.js'

/**
 * Runs boxes/build.sh for the e2e global setup: asynchronously, with its output streamed as it
 * comes and kept in a log file, bounded in time, and reported as a message naming the box, how
 * the build ended and the last lines of its output when it fails. Never used inside a test
 * worker: a worker blocked for minutes loses its connection to vitest.
 */

export const BUILD_SCRIPT = path.join(repoRoot, 'boxes/build.sh')

export interface BoxBuildOptions {
  box: string
  /** The build script (boxes/build.sh; another script in tests of this module). */
  script?: string
  env?: NodeJS.ProcessEnv
  /** Where the whole output goes. */
  logFile: string
  /** Each chunk of output, as it arrives. */
  onOutput?: (chunk: string) => void
  timeoutMs: number
  /** Time between SIGTERM and SIGKILL when the build must be stopped. */
  killGraceMs?: number
  /** Stops the build (SIGTERM, then SIGKILL) when aborted, e.g. on an interrupt of the test run. */
  signal?: AbortSignal
  /** Lines of output quoted in a failure message. */
  tailLines?: number
}

export interface BoxBuildResult {
  ok: boolean
  seconds: number
  /** Undefined when ok. */
  message?: string
}

/** The last `count` non-empty lines of `text`. */
export function lastLines(text: string, count: number): string[] {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .slice(-count)
}

/** Builds one box; resolves (never rejects) when the build script has exited. */
export function buildBoxAsync(options: BoxBuildOptions): Promise<BoxBuildResult> {
  const script = options.script ?? BUILD_SCRIPT
  const tailCount = options.tailLines ?? 25
  const started = performance.now()
  mkdirSync(path.dirname(options.logFile), {recursive: true})
  const log = createWriteStream(options.logFile)
  // Only the end of the output is kept in memory, for the failure message.
  let tail = ''
  return new Promise((resolve) => {
    // A process group of its own, so that stopping it reaches every process it started
    // (build.sh itself forwards SIGTERM to the sessions building each box).
    const child = spawn('bash', [script, options.box], {env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    const signalAll = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal)
      } catch {
        child.kill(signal)
      }
    }
    let stopReason: string | undefined
    let killTimer: NodeJS.Timeout | undefined
    let exited = false
    const stop = (reason: string) => {
      if (stopReason !== undefined || exited) return
      stopReason = reason
      signalAll('SIGTERM') // build.sh stops its build and cleans up mounts and temporary files
      killTimer = setTimeout(() => signalAll('SIGKILL'), options.killGraceMs ?? 60_000)
    }
    const timer = setTimeout(() => stop(`did not finish within ${Math.round(options.timeoutMs / 1000)} s`), options.timeoutMs)
    const onAbort = () => stop('was interrupted')
    options.signal?.addEventListener('abort', onAbort)
    if (options.signal?.aborted === true) onAbort()
    // A vitest process that exits for any other reason takes the build with it.
    const onExit = () => signalAll('SIGTERM')
    process.once('exit', onExit)

    const take = (chunk: Buffer) => {
      const text = chunk.toString()
      log.write(text)
      options.onOutput?.(text)
      tail = lastLines(tail + text, tailCount).join('\n') + (text.endsWith('\n') ? '\n' : '')
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)

    const finish = (ended: string, ok: boolean) => {
      clearTimeout(timer)
      if (killTimer !== undefined) clearTimeout(killTimer)
      options.signal?.removeEventListener('abort', onAbort)
      process.removeListener('exit', onExit)
      const seconds = (performance.now() - started) / 1000
      log.end(() => {
        if (ok) {
          resolve({ok, seconds})
          return
        }
        const quoted = lastLines(tail, tailCount)
          .map((line) => `  | ${line}`)
          .join('\n')
        resolve({
          ok,
          seconds,
          message:
            `the ${options.box} box could not be built: ${script} ${options.box} ${ended} after ${seconds.toFixed(0)} s.\n` +
            (quoted === '' ? '  (no output)\n' : `Last lines of its output:\n${quoted}\n`) +
            `Full log: ${options.logFile}\n` +
            `Fix the cause and run the tests again, or build the box by hand: sudo npm run boxes -- ${options.box}`,
        })
      })
    }
    let finished = false
    const end = (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return
      finished = true
      if (stopReason !== undefined) finish(stopReason, false)
      else if (code === 0) finish('succeeded', true)
      else finish(signal === null ? `failed with exit status ${code}` : `was killed by ${signal}`, false)
    }
    child.on('error', (error) => {
      finished = true
      finish(`could not be started (${error.message})`, false)
    })
    // Normally the output is complete at 'close'; a process left behind by the build may keep
    // the pipes open, so the end of the script itself is enough after a short wait.
    child.on('exit', (code, signal) => {
      exited = true
      setTimeout(() => {
        child.stdout.destroy()
        child.stderr.destroy()
        end(code, signal)
      }, 2_000).unref()
    })
    child.on('close', (code, signal) => end(code, signal))
  })
}

/**
 * The boxes among `boxes` that are missing from the output directory or were built from
 * another recipe (boxes/build.sh --stale: no root, no network, no build).
 */
export function staleBoxes(boxes: readonly string[], env: NodeJS.ProcessEnv = process.env, script = BUILD_SCRIPT): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script, '--stale', ...boxes], {env, timeout: 60_000}, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`${script} --stale failed: ${stderr.trim() || error.message}`))
        return
      }
      resolve(stdout.split('\n').filter((line) => line !== ''))
    })
  })
}

export interface BoxBuildsOptions {
  /** The boxes to build, one after the other, in this order. */
  boxes: readonly string[]
  /** Where each box's log goes (<logsDir>/<box>.log). */
  logsDir: string
  /** Written (atomically) when every build has ended: a BoxBuildsOutcome. */
  statusFile: string
  /** Bound of each build. */
  timeoutMs: number
  script?: string
  env?: NodeJS.ProcessEnv
  killGraceMs?: number
  /** Stops the build under way and skips the others. */
  signal?: AbortSignal
  /** Progress lines ("built the tiny box in 21.0 s") and the builds' own output. */
  say: (line: string) => void
  onOutput?: (chunk: string) => void
}

/**
 * Builds the boxes one after the other, in the background: returns at once a promise of the
 * outcome (never rejected) and writes the outcome to `statusFile` when the last build has ended,
 * for the test workers that wait for it (awaitBoxBuilds in built-boxes.ts). After the first box
 * built, the others reuse the package lists it refreshed (VM_BOXES_OFFLINE=1).
 */
export function startBoxBuilds(options: BoxBuildsOptions): Promise<BoxBuildsOutcome> {
  const failures: Record<string, string> = {}
  const buildAll = async (): Promise<BoxBuildsOutcome> => {
    const started = performance.now()
    const times: string[] = []
    let env = options.env ?? process.env
    for (const box of options.boxes) {
      if (options.signal?.aborted === true) {
        failures[box] = `the ${box} box was not built: the test run was interrupted`
        continue
      }
      const logFile = path.join(options.logsDir, `${box}.log`)
      options.say(`building the ${box} box in the background (missing or from another recipe); log: ${logFile}`)
      const result = await buildBoxAsync({
        box,
        script: options.script,
        env,
        logFile,
        timeoutMs: options.timeoutMs,
        killGraceMs: options.killGraceMs,
        signal: options.signal,
        onOutput: options.onOutput,
      })
      times.push(`${box} ${result.seconds.toFixed(1)} s`)
      if (result.ok) {
        options.say(`built the ${box} box in ${result.seconds.toFixed(1)} s`)
        // The package lists were refreshed moments ago by this build: the next box uses them.
        if (env.VM_BOXES_OFFLINE === undefined) env = {...env, VM_BOXES_OFFLINE: '1'}
      } else {
        failures[box] = result.message ?? `the ${box} box could not be built`
        options.say(failures[box])
      }
    }
    const seconds = (performance.now() - started) / 1000
    const failed = Object.keys(failures)
    options.say(
      `box builds took ${seconds.toFixed(1)} s (${times.join(', ')})` +
        (failed.length === 0 ? '' : `; FAILED: ${failed.join(', ')} (the tests that need them fail with the message above)`),
    )
    return {failures, seconds}
  }
  return buildAll()
    .catch((error: unknown) => {
      const message = `the box builds stopped: ${error instanceof Error ? error.message : String(error)}`
      options.say(message)
      for (const box of options.boxes) failures[box] ??= message
      return {failures, seconds: 0}
    })
    .then((outcome) => {
      try {
        writeBoxBuildsOutcome(options.statusFile, outcome)
      } catch (error) {
        options.say(`cannot write ${options.statusFile}: ${(error as Error).message} (the e2e files waiting for it will time out)`)
      }
      return outcome
    })
}
