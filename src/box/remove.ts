import {UsageError, UserError} from '../errors/errors.js'
import {boxesRoot, listBoxes, removeStoredBox, type BoxKey, type StoredBox} from './store.js'
import {deleteAllBoxReferences, deleteBoxReference, withStoreLock} from './references.js'
import {describeUser, surveyUsage, type BoxUser} from './usage.js'
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
  /** Copies of the removed boxes vm uploaded to libvirt hosts; they stay there (removal touches only this host). */
  heldOnHosts: Array<{box: BoxKey; uri: string; pool: string; volume: string}>
}

function keyOf(box: StoredBox): BoxKey {
  return {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider}
}

export function describe(key: BoxKey): string {
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
  // Under the store's lock: no machine can start using a box between the check and the removal.
  return withStoreLock(root, async () => {
    const survey = await surveyUsage(env, root)
    const orphaned: BoxUser[] = []
    for (const box of chosen) {
      const users = await survey.usersOf(keyOf(box), {tidy: true})
      if (users.length > 0 && options.force !== true) throw inUseError(keyOf(box), users)
      orphaned.push(...users)
    }
    for (const box of chosen) {
      const key = keyOf(box)
      await removeStoredBox(key, root)
      // The references of machines known to be there stay: they name its users if the box is added
      // again. Those vm was unsure of (a project directory gone) were overridden with --force.
      const certain = orphaned.filter((user) => sameKey(user.box, key) && user.unsure === undefined)
      if (certain.length === 0) await deleteAllBoxReferences(key, root)
      else
        for (const user of orphaned.filter((other) => sameKey(other.box, key) && other.unsure !== undefined))
          if (user.id !== undefined) await deleteBoxReference(key, user.id, root)
    }
    const {hostsHoldingBox} = await import('../driver/libvirt/holdings.js')
    const heldOnHosts: RemoveBoxResult['heldOnHosts'] = []
    for (const box of chosen)
      for (const held of await hostsHoldingBox(keyOf(box), env))
        heldOnHosts.push({box: keyOf(box), uri: held.uri, pool: held.pool, volume: held.volume})
    return {removed: chosen.map(keyOf), orphaned, heldOnHosts}
  })
}

function sameKey(a: BoxKey, b: BoxKey): boolean {
  return a.name === b.name && a.version === b.version && a.architecture === b.architecture && a.provider === b.provider
}

/** The refusal: which machines use the box (and why an uncertain one still counts), and what to do. */
export function inUseError(key: BoxKey, users: BoxUser[], message?: string, hint?: string): UserError {
  const unsure = users.some((user) => user.unsure !== undefined)
  const removeHint =
    'Destroy those machines first ("vm destroy" in their project), or pass --force to remove the box anyway (they will not boot again).' +
    (unsure
      ? ' A machine whose project directory is gone may have moved with it; if it was deleted without "vm destroy", only --force frees the box.'
      : '')
  return new UserError(message ?? `Box ${describe(key)} is used by ${users.length === 1 ? 'a machine' : `${users.length} machines`}`, {
    code: 'BOX_IN_USE',
    details: users.map((user) => describeUser(user)),
    hint: hint ?? removeHint,
    data: {users},
  })
}
