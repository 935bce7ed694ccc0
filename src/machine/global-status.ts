import {parseLibvirtUri} from '../driver/libvirt/uri.js'
import {listIndex} from '../state/global-index.js'
import {inspectMachine, type MachineStatus} from './inspect.js'
import type {MachineRecord} from './record.js'

/** A machine as global-status lists it: its status, its id and the host it runs on. */
export type GlobalMachine = MachineStatus & {
  id: string
  /** "local" (this host: QEMU, or libvirt on a local URI), the remote libvirt host's name, or undefined when the record is unreadable. */
  host: string | undefined
}

export interface GlobalStatus {
  machines: GlobalMachine[]
  /** Index entries whose project or machine has gone (removed with prune). */
  gone: Array<{id: string; name: string; projectDir: string}>
}

/** The host a machine runs on: "local", or the host of its libvirt URI when that is remote. */
export function machineHost(record: MachineRecord | undefined): string | undefined {
  if (record === undefined) return undefined
  const uri = record.libvirt?.uri
  if (uri === undefined) return 'local'
  try {
    const host = parseLibvirtUri(uri)
    return host.local ? 'local' : host.label
  } catch {
    return uri
  }
}

/**
 * Every machine of every project on this host, from the self-repairing index. One machine that
 * cannot be inspected (an unreadable record, say) is listed as unknown with the reason; it
 * never hides the others.
 */
export async function globalStatus(prune: boolean): Promise<GlobalStatus> {
  const {live, gone} = await listIndex({prune})
  const machines = await Promise.all(
    live.map(async (entry): Promise<GlobalMachine> => {
      try {
        const inspection = await inspectMachine(entry.projectDir, entry.name, {engineFailure: 'report'})
        return {...inspection.status, id: entry.id, host: machineHost(inspection.record)}
      } catch (error) {
        return {
          id: entry.id,
          host: undefined,
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
