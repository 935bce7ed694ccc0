import {listIndex} from '../state/global-index.js'
import {inspectMachine, type MachineStatus} from './inspect.js'

export interface GlobalStatus {
  machines: Array<MachineStatus & {id: string}>
  /** Index entries whose project or machine has gone (removed with prune). */
  gone: Array<{id: string; name: string; projectDir: string}>
}

/**
 * Every machine of every project on this host, from the self-repairing index. One machine that
 * cannot be inspected (an unreadable record, say) is listed as unknown with the reason; it
 * never hides the others.
 */
export async function globalStatus(prune: boolean): Promise<GlobalStatus> {
  const {live, gone} = await listIndex({prune})
  const machines = await Promise.all(
    live.map(async (entry): Promise<MachineStatus & {id: string}> => {
      try {
        return {...(await inspectMachine(entry.projectDir, entry.name)).status, id: entry.id}
      } catch (error) {
        return {
          id: entry.id,
          name: entry.name,
          projectDir: entry.projectDir,
          state: 'unknown',
          pid: undefined,
          box: undefined,
          accel: undefined,
          ssh: undefined,
          vnc: undefined,
          networks: undefined,
          problem: error instanceof Error ? error.message : String(error),
        }
      }
    }),
  )
  return {machines, gone}
}
