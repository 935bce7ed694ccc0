import {existsSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Where the boxes made by boxes/build.sh are, shared by the e2e global setup (which builds them,
 * in the main vitest process) and the test workers (which only look them up). No vitest runtime
 * import here: the global setup loads this module outside any worker.
 */

export const repoRoot = path.resolve(import.meta.dirname, '../..')

/** The boxes the end-to-end tests boot, in the order they are built. */
export const E2E_BOXES = ['tiny', 'debian-12', 'debian-12-cloud'] as const
export type E2eBox = (typeof E2E_BOXES)[number]

/** The key under which the global setup hands its build failures (box -> message) to the workers. */
export const BOX_BUILD_FAILURES = 'vmfileBoxBuildFailures'

/**
 * The key under which the global setup tells the workers about the box builds it left running
 * in the background (undefined when it started none): see awaitBoxBuilds.
 */
export const BOX_BUILDS = 'vmfileBoxBuilds'

export interface BoxBuildsInProgress {
  /** The boxes being built. */
  boxes: string[]
  /** The file the global setup writes (atomically) when every build has ended: a BoxBuildsOutcome. */
  statusFile: string
  /** How long a worker waits for it at most. */
  waitMs: number
}

/** What the global setup writes into the status file when the builds have ended. */
export interface BoxBuildsOutcome {
  /** box -> message, for each build that failed. */
  failures: Record<string, string>
  seconds: number
}

declare module 'vitest' {
  export interface ProvidedContext {
    vmfileBoxBuildFailures: Record<string, string>
    vmfileBoxBuilds: BoxBuildsInProgress | undefined
  }
}

/** Writes the outcome of the box builds for the workers waiting in awaitBoxBuilds (atomic rename). */
export function writeBoxBuildsOutcome(statusFile: string, outcome: BoxBuildsOutcome): void {
  const temporary = `${statusFile}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify(outcome))
  renameSync(temporary, statusFile)
}

/**
 * Waits (asynchronously: the worker's event loop stays free) until the global setup has written
 * the outcome of the builds it left running, and returns it. Rejects after `builds.waitMs` with
 * a message naming the boxes and the status file.
 */
export async function awaitBoxBuilds(builds: BoxBuildsInProgress, pollMs = 1000): Promise<BoxBuildsOutcome> {
  const deadline = performance.now() + builds.waitMs
  for (;;) {
    let text: string | undefined
    try {
      text = readFileSync(builds.statusFile, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    if (text !== undefined) return JSON.parse(text) as BoxBuildsOutcome
    if (performance.now() >= deadline) {
      throw new Error(
        `the build of the ${builds.boxes.join(', ')} box(es) started by the e2e global setup did not end within ` +
          `${Math.round(builds.waitMs / 1000)} s (no ${builds.statusFile}); see the [e2e setup] lines of the run`,
      )
    }
    await sleep(pollMs)
  }
}

/** boxes/build.sh's output directory: $VM_BOXES_OUT, else boxes/dist in the repository. */
export function boxesOutDir(env: NodeJS.ProcessEnv = process.env): string {
  const out = env.VM_BOXES_OUT
  return out === undefined || out === '' ? path.join(repoRoot, 'boxes/dist') : path.resolve(out)
}

/** The folder of the catalogs and archives (boxes/build.sh publishes into <out>/vmfile). */
export function boxesCatalogDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(boxesOutDir(env), 'vmfile')
}

/**
 * The .box archive of the newest version in the box's catalog, or undefined when the catalog or
 * the archive it names is missing.
 */
export function findBuiltBox(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = boxesCatalogDir(env)
  const catalogFile = path.join(dir, `${name}.json`)
  if (!existsSync(catalogFile)) return undefined
  let url: unknown
  try {
    const catalog = JSON.parse(readFileSync(catalogFile, 'utf8')) as {versions?: Array<{providers?: Array<{url?: unknown}>}>}
    url = catalog.versions?.at(-1)?.providers?.[0]?.url
  } catch {
    return undefined
  }
  if (typeof url !== 'string' || url === '' || url.includes('/')) return undefined
  const file = path.join(dir, url)
  return existsSync(file) ? file : undefined
}
