import {boxesRoot, listBoxes, removeStoredBox, type BoxKey} from './store.js'
import {deleteAllBoxReferences, withStoreLock} from './references.js'
import {describeUser, surveyUsage} from './usage.js'

export interface PruneResult {
  removed: BoxKey[]
  /** Kept versions; those in use name their users ("machine "web" in /project"). */
  kept: Array<BoxKey & {reason: 'newest' | 'in use'; users?: string[]}>
  dryRun: boolean
}

/**
 * Removes every stored version that is not the newest of its name, architecture and provider
 * and that no machine uses (see usage.ts: a machine that may have moved counts). With dryRun,
 * only reports what it would remove.
 */
export async function pruneBoxes(options: {dryRun?: boolean | undefined; env?: NodeJS.ProcessEnv | undefined} = {}): Promise<PruneResult> {
  const env = options.env ?? process.env
  const root = boxesRoot(env)
  const dryRun = options.dryRun === true
  const prune = async (): Promise<PruneResult> => {
    const survey = await surveyUsage(env, root)
    const result: PruneResult = {removed: [], kept: [], dryRun}
    const seen = new Set<string>()
    // listBoxes sorts each name newest first, so the first of a group is its newest version.
    for (const box of await listBoxes(root)) {
      const key: BoxKey = {name: box.name, version: box.version, architecture: box.architecture, provider: box.provider}
      const group = `${box.name}\0${box.architecture}\0${box.provider}`
      if (!seen.has(group)) {
        seen.add(group)
        result.kept.push({...key, reason: 'newest'})
        continue
      }
      const users = await survey.usersOf(key, {tidy: !dryRun})
      if (users.length > 0) {
        result.kept.push({...key, reason: 'in use', users: users.map((user) => describeUser(user))})
      } else {
        if (!dryRun) {
          await removeStoredBox(key, root)
          await deleteAllBoxReferences(key, root)
        }
        result.removed.push(key)
      }
    }
    return result
  }
  // Under the store's lock: no machine can start using a box between the check and the removal.
  return dryRun ? prune() : withStoreLock(root, prune)
}
