import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'

import {referencedFiles} from './metadata.js'
import {withStoreLock} from './references.js'
import {describe, inUseError} from './remove.js'
import {installBox, readStoredBox, type BoxKey} from './store.js'
import {surveyUsage} from './usage.js'

/** Whether two files hold the same bytes (sizes first, then both streams side by side). */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b).catch(() => undefined)])
  if (sb === undefined || !sb.isFile() || sa.size !== sb.size) return false
  const chunks = (file: string) => createReadStream(file, {highWaterMark: 1 << 20})[Symbol.asyncIterator]()
  const left = chunks(a)
  const right = chunks(b)
  let pending: Buffer = Buffer.alloc(0)
  for (;;) {
    const next = await left.next()
    if (next.done === true) break
    let chunk = next.value as Buffer
    while (chunk.length > 0) {
      if (pending.length === 0) {
        const other = await right.next()
        if (other.done === true) return false
        pending = other.value as Buffer
      }
      const length = Math.min(chunk.length, pending.length)
      if (!chunk.subarray(0, length).equals(pending.subarray(0, length))) return false
      chunk = chunk.subarray(length)
      pending = pending.subarray(length)
    }
  }
  return pending.length === 0 && (await right.next()).done === true
}

/**
 * `vm box add --force`: puts the box unpacked in `tempDir` in place of the stored box `key`.
 * Machines' overlays are backed by the stored box's disks (and boot its kernel and initrd)
 * by path, so while any machine uses the box, replacing it is allowed only when every such
 * file stays byte for byte what it was; otherwise it is refused, naming the machines. Runs
 * under the store's lock, like box remove and machine creation.
 */
export async function replaceStoredBox(tempDir: string, key: BoxKey, root: string, env: NodeJS.ProcessEnv): Promise<void> {
  await withStoreLock(root, async () => {
    const old = await readStoredBox(key, root)
    if (old !== undefined) {
      const users = await (await surveyUsage(env, root)).usersOf(key, {tidy: true})
      if (users.length > 0) {
        const changed: string[] = []
        for (const file of referencedFiles(old.metadata))
          if (!(await sameContent(path.join(old.dir, file), path.join(tempDir, file)))) changed.push(file)
        if (changed.length > 0)
          throw inUseError(
            key,
            users,
            `Box ${describe(key)} is used by ${users.length === 1 ? 'a machine' : `${users.length} machines`}: replacing it would change ${changed.join(', ')} under ${users.length === 1 ? 'its' : 'their'} disks`,
            'Give the new box another version (the machines keep this one), or destroy those machines first ("vm destroy" in their project). To replace it regardless, "vm box remove --force" it first (those machines will not boot again).',
          )
      }
    }
    await installBox(tempDir, key, true, root)
  })
}
