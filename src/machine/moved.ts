import path from 'node:path'

import {writeBoxReference} from '../box/references.js'
import {driverOf} from '../driver/registry.js'
import {addToIndex} from '../state/global-index.js'
import type {MachinePaths} from '../state/machine-files.js'
import {writeRecord, type MachineRecord} from './record.js'

/** Whether the machine's project directory is no longer where the record says (it was moved or copied). */
export function projectMoved(record: Pick<MachineRecord, 'projectDir'>, projectDir: string): boolean {
  return path.resolve(record.projectDir) !== path.resolve(projectDir)
}

/**
 * The record of a machine whose project now lives in `projectDir`: its project directory and
 * the host paths of synced folders inside the project follow the move. Paths outside the old
 * project stay as they are.
 */
export function relocatedRecord(record: MachineRecord, projectDir: string): MachineRecord {
  const from = path.resolve(record.projectDir)
  const to = path.resolve(projectDir)
  const follow = (host: string): string => {
    const relative = path.relative(from, host)
    return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative)) ? path.join(to, relative) : host
  }
  return {
    ...record,
    projectDir: to,
    config: {...record.config, syncedFolders: record.config.syncedFolders.map((folder) => ({...folder, host: follow(folder.host)}))},
  }
}

/**
 * Re-registers a machine whose project moved: the record and the global index name the new
 * directory. A running machine keeps serving synced folders from the old path until the next boot,
 * which the warning says. Returns the record to go on with.
 */
export async function adoptMovedProject(
  record: MachineRecord,
  projectDir: string,
  paths: MachinePaths,
  running: boolean,
  warn: (text: string) => void,
): Promise<MachineRecord> {
  if (!projectMoved(record, projectDir)) return record
  const updated = relocatedRecord(record, projectDir)
  await writeRecord(paths.record, updated)
  await addToIndex({id: record.id, name: record.name, projectDir: updated.projectDir})
  // The box store's record of who uses the box follows too, so the box never looks orphaned.
  await writeBoxReference(record.box, {
    id: record.id,
    name: record.name,
    projectDir: updated.projectDir,
    overlays: (await driverOf(record)).diskFiles(paths, record.box.disks.length),
    createdAt: record.createdAt,
  })
  const shares = record.config.syncedFolders.some((folder) => folder.type !== 'rsync')
  warn(
    `the project moved from ${record.projectDir} to ${updated.projectDir}; the machine is registered at the new path.` +
      (running && shares ? ' Synced folders use the new host path from the next boot ("vm reload").' : ''),
  )
  return updated
}
