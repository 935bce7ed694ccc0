import {mkdirSync, rmSync} from 'node:fs'
import path from 'node:path'

import type {TestProject} from 'vitest/node'

import {staleBoxes, startBoxBuilds} from './helpers/box-build.js'
import {BOX_BUILDS, BOX_BUILD_FAILURES, E2E_BOXES, boxesCatalogDir, boxesOutDir} from './helpers/built-boxes.js'

/**
 * Global setup of the e2e project: builds the boxes the end-to-end tests boot that are missing
 * from boxes/dist (or $VM_BOXES_OUT) or were built from another recipe, with boxes/build.sh as an
 * asynchronous child process of the main vitest process whose output is streamed.
 *
 * The builds run in the background: this setup starts them and returns at once, so that the
 * unit project's files, which vitest runs before the e2e project's single fork, run while the
 * boxes are built. Each e2e file waits for the end of the builds before it starts (the e2e
 * project's setup file test/helpers/e2e-await-boxes.ts), so no VM test runs beside a build. The
 * workers then only look the boxes up (builtBox in helpers/vm-cli.ts).
 *
 * A failed build does not stop the run: it is reported here (box, how it ended, the end of its
 * output, the log file), and every test that needs that box fails with the same message, while
 * the tests that need no box still run.
 *
 * VM_BOXES_BUILD_TIMEOUT (seconds, default 1800) bounds each build.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const say = (text: string) => process.stderr.write(`[e2e setup] ${text}\n`)
  project.provide(BOX_BUILD_FAILURES, {})
  project.provide(BOX_BUILDS, undefined)

  const stale = await staleBoxes(E2E_BOXES)
  if (stale.length === 0) return undefined
  const timeoutSeconds = Number(process.env.VM_BOXES_BUILD_TIMEOUT ?? '1800')
  if (!(timeoutSeconds > 0)) {
    throw new Error(`VM_BOXES_BUILD_TIMEOUT must be a number of seconds greater than 0, not '${process.env.VM_BOXES_BUILD_TIMEOUT}'`)
  }
  const timeoutMs = timeoutSeconds * 1000
  const logsDir = path.join(boxesOutDir(), 'logs')
  mkdirSync(logsDir, {recursive: true})
  // One status file per run, so that a file left by an earlier run is never taken for this one's.
  const statusFile = path.join(logsDir, `.builds-${process.pid}-${Date.now()}.json`)
  // Each build is bounded, and stopping one may take the kill grace time (60 s) on top.
  project.provide(BOX_BUILDS, {boxes: stale, statusFile, waitMs: stale.length * (timeoutMs + 90_000)})

  // An interrupt stops the build cleanly (build.sh unmounts and removes its work).
  const interrupt = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: stopping the box build`)
    interrupt.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  say(`building ${stale.join(', ')} into ${boxesCatalogDir()} while the unit tests run; the e2e tests wait for them`)
  const builds = startBoxBuilds({
    boxes: stale,
    logsDir,
    statusFile,
    timeoutMs,
    signal: interrupt.signal,
    say,
    onOutput: (chunk) => process.stderr.write(chunk),
  }).then((outcome) => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    // The e2e files that start from now on get the failures through inject; the ones already
    // waiting read them from the status file.
    project.provide(BOX_BUILD_FAILURES, outcome.failures)
    return outcome
  })

  // At the end of the run (also one that ends before any e2e file): stop a build still under
  // way and wait for its cleanup, then remove the status file.
  return async () => {
    interrupt.abort()
    await builds
    rmSync(statusFile, {force: true})
  }
}
