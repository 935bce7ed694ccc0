import {UsageError, UserError} from '../cli/errors.js'
import {boxesRoot, listBoxes, removeStoredBox, type BoxKey, type StoredBox} from './store.js'
import {machinesUsing, type BoxUser} from './usage.js'
import {parseConstraint, satisfies} from './version.js'

export interface RemoveBoxOptions {
  name: string
  /** A version or constraint; required when several versions are stored, unless `all`. */
  version?: string | undefined
  all?: boolean | undefined
  provider?: string | undefined
  architecture?: string | undefined
  /** Remove even when machines use the box. */
  force?: boolean | undefined
  env?: NodeJS.ProcessEnv | undefined
}

export interface RemoveBoxResult {
  removed: BoxKey[]
  /** Machines left without their box (only with force). */
  orphaned: BoxUser[]
}

function keyOf(box: StoredBox): BoxKey {
  return {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider}
}

function describe(key: BoxKey): string {
  return `${key.name} ${key.version} (${key.architecture}, ${key.provider})`
}

/** Removes stored boxes, refusing while a machine uses one unless forced. */
export async function removeBox(options: RemoveBoxOptions): Promise<RemoveBoxResult> {
  const env = options.env ?? process.env
  const root = boxesRoot(env)
  let requirements: ReturnType<typeof parseConstraint> = []
  try {
    if (options.version !== undefined) requirements = parseConstraint(options.version)
  } catch (error) {
    throw new UsageError(`Invalid --box-version "${options.version}": ${(error as Error).message}`)
  }
  const named = (await listBoxes(root)).filter((box) => box.name === options.name)
  if (named.length === 0) {
    throw new UserError(`No box named ${options.name} is stored`, {code: 'BOX_NOT_FOUND', hint: '"vm box list" shows the stored boxes.'})
  }
  const chosen = named.filter(
    (box) =>
      satisfies(box.version, requirements) &&
      (options.provider === undefined || box.provider === options.provider) &&
      (options.architecture === undefined || box.architecture === options.architecture),
  )
  if (chosen.length === 0) {
    throw new UserError(`No stored ${options.name} matches the given version, provider or architecture`, {
      code: 'BOX_NOT_FOUND',
      details: named.map((box) => `stored: ${describe(keyOf(box))}`),
    })
  }
  if (chosen.length > 1 && options.all !== true) {
    throw new UserError(`Several versions of ${options.name} are stored`, {
      code: 'BOX_AMBIGUOUS',
      details: chosen.map((box) => describe(keyOf(box))),
      hint: 'Pick one with --box-version (and --provider/--architecture), or remove them all with --all.',
    })
  }
  const orphaned: BoxUser[] = []
  for (const box of chosen) {
    const users = await machinesUsing(keyOf(box), env)
    if (users.length > 0 && options.force !== true) {
      throw new UserError(`Box ${describe(keyOf(box))} is used by ${users.length === 1 ? 'a machine' : `${users.length} machines`}`, {
        code: 'BOX_IN_USE',
        details: users.map((user) => `machine "${user.machine}" in ${user.projectDir}`),
        hint: 'Destroy those machines first (vm destroy), or pass --force to remove the box anyway (they will not boot again).',
        data: {users},
      })
    }
    orphaned.push(...users)
  }
  for (const box of chosen) await removeStoredBox(keyOf(box), root)
  return {removed: chosen.map(keyOf), orphaned}
}
