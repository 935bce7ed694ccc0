import {inject} from 'vitest'

import {BOX_BUILDS, BOX_BUILD_FAILURES, awaitBoxBuilds} from './built-boxes.js'

/**
 * Setup file of the e2e project (vitest.config.ts), run before each e2e test file: when the
 * global setup left box builds running in the background (test/global-setup-e2e.ts), waits for
 * their end, so that no test boots a VM beside a build or looks for a box not yet published.
 * The builds' failures are added to the record builtBox (helpers/vm-cli.ts) reads through
 * inject, which was handed to this worker before the builds ended.
 */
const builds = inject(BOX_BUILDS)
if (builds !== undefined) {
  const started = performance.now()
  const outcome = await awaitBoxBuilds(builds)
  Object.assign(inject(BOX_BUILD_FAILURES), outcome.failures)
  const waited = (performance.now() - started) / 1000
  if (waited >= 1) process.stderr.write(`[e2e] waited ${waited.toFixed(1)} s for the box builds (${builds.boxes.join(', ')})\n`)
}
