import {listIndex} from '../state/global-index.js'
import {inspectMachine, type MachineStatus} from './inspect.js'

export interface GlobalStatus {
  machines: Array<MachineStatus & {id: string}>
  /** Index entries whose project or machine has gone (removed with prune). */
  gone: Array<{id: string; name: string; projectDir: string}>
}

/** Every machine of every project on this host, from the self-repairing index. */
export async function globalStatus(prune: boolean): Promise<GlobalStatus> {
  const {live, gone} = await listIndex({prune})
  const machines = await Promise.all(
    live.map(async (entry) => ({...(await inspectMachine(entry.projectDir, entry.name)).status, id: entry.id})),
  )
  return {machines, gone}
}
