import path from 'node:path'

import {packageRoot} from '../state/package-root.js'
import {requireCached} from './code-cache.js'
import type {runFastSsh as RunFastSsh} from './ssh-fast-path.js'

/**
 * What bin/run.js requires for `vm ssh` before anything else (dist/ssh-fast.cjs): ssh-fast-path.ts,
 * bundled on its own as CommonJS (dist/ssh-fast-path.cjs) and compiled from the V8 code cache
 * like oclif, so that the fast path parses no code it does not run. Resolves undefined when the
 * full command must run.
 */
export async function runFastSsh(argv: readonly string[]): Promise<number | undefined> {
  const fast = requireCached(path.join(packageRoot(), 'dist', 'ssh-fast-path.cjs')) as {runFastSsh: typeof RunFastSsh}
  return fast.runFastSsh(argv)
}
