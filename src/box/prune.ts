import {boxesRoot, listBoxes, removeStoredBox, type BoxKey} from './store.js'
import {listBoxUsers, usesBox} from './usage.js'

export interface PruneResult {
  removed: BoxKey[]
  kept: Array<BoxKey & {reason: 'newest' | 'in use'}>
  dryRun: boolean
}

/**
 * Removes every stored version that is not the newest of its name, architecture and provider
 * and that no machine uses. With dryRun, only reports what it would remove.
 */
export async function pruneBoxes(options: {dryRun?: boolean | undefined; env?: NodeJS.ProcessEnv | undefined} = {}): Promise<PruneResult> {
  const env = options.env ?? process.env
  const root = boxesRoot(env)
  const users = await listBoxUsers(env)
  const result: PruneResult = {removed: [], kept: [], dryRun: options.dryRun === true}
  const seen = new Set<string>()
  // listBoxes sorts each name newest first, so the first of a group is its newest version.
  for (const box of await listBoxes(root)) {
    const key: BoxKey = {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider}
    const group = `${box.name}\0${box.architecture}\0${box.provider}`
    if (!seen.has(group)) {
      seen.add(group)
      result.kept.push({...key, reason: 'newest'})
    } else if (users.some((user) => usesBox(user, key))) {
      result.kept.push({...key, reason: 'in use'})
    } else {
      if (!result.dryRun) await removeStoredBox(key, root)
      result.removed.push(key)
    }
  }
  return result
}
