import path from 'node:path'

import type {TestProject} from 'vitest/node'

import {buildBoxAsync, staleBoxes} from './helpers/box-build.js'
import {BOX_BUILD_FAILURES, E2E_BOXES, boxesCatalogDir, boxesOutDir} from './helpers/built-boxes.js'

/**
 * Global setup of the e2e project: before any test worker starts, builds the boxes the
 * end-to-end tests boot that are missing from boxes/dist (or $VM_BOXES_OUT) or were built from
 * another recipe, with boxes/build.sh as an asynchronous child process whose output is streamed.
 * The workers then only look the boxes up (builtBox in helpers/vm-cli.ts).
 *
 * A failed build does not stop the run: it is reported here (box, how it ended, the end of its
 * output, the log file), and every test that needs that box fails with the same message, while
 * the tests that need no box still run.
 *
 * VM_BOXES_BUILD_TIMEOUT (seconds, default 1800) bounds each build.
 */
export default async function setup(project: TestProject): Promise<void> {
  const say = (text: string) => process.stderr.write(`[e2e setup] ${text}\n`)
  const failures: Record<string, string> = {}
  project.provide(BOX_BUILD_FAILURES, failures)

  const stale = await staleBoxes(E2E_BOXES)
  if (stale.length === 0) return
  const timeoutSeconds = Number(process.env.VM_BOXES_BUILD_TIMEOUT ?? '1800')
  if (!(timeoutSeconds > 0)) {
    throw new Error(`VM_BOXES_BUILD_TIMEOUT must be a number of seconds greater than 0, not '${process.env.VM_BOXES_BUILD_TIMEOUT}'`)
  }
  const timeoutMs = timeoutSeconds * 1000
  // An interrupt stops the build cleanly (build.sh unmounts and removes its work) and ends the run.
  const interrupt = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: stopping the box build`)
    interrupt.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const started = performance.now()
  const times: string[] = []
  let env = process.env
  try {
    for (const box of stale) {
      const logFile = path.join(boxesOutDir(), 'logs', `${box}.log`)
      say(`building the ${box} box into ${boxesCatalogDir()} (missing or from another recipe); log: ${logFile}`)
      const result = await buildBoxAsync({
        box,
        env,
        logFile,
        timeoutMs,
        signal: interrupt.signal,
        onOutput: (chunk) => process.stderr.write(chunk),
      })
      times.push(`${box} ${result.seconds.toFixed(1)} s`)
      if (result.ok) {
        say(`built the ${box} box in ${result.seconds.toFixed(1)} s`)
        // The package lists were refreshed moments ago by this build: the next box uses them.
        if (env.VM_BOXES_OFFLINE === undefined) env = {...env, VM_BOXES_OFFLINE: '1'}
      } else {
        failures[box] = result.message ?? `the ${box} box could not be built`
        say(failures[box])
      }
      if (interrupt.signal.aborted) throw new Error('the box build was interrupted')
    }
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
  const failed = Object.keys(failures)
  say(
    `box builds took ${((performance.now() - started) / 1000).toFixed(1)} s (${times.join(', ')})` +
      (failed.length === 0 ? '' : `; FAILED: ${failed.join(', ')} (the tests that need them fail with the message above)`),
  )
  project.provide(BOX_BUILD_FAILURES, failures)
}
