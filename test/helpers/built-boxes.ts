import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'

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

declare module 'vitest' {
  export interface ProvidedContext {
    vmfileBoxBuildFailures: Record<string, string>
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
