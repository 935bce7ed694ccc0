import {rsyncFolder} from '../sync/folders.js'
import {resolveMachines} from './select.js'
import {runningTarget} from './ssh.js'

/** vm rsync: copies every rsync-type folder of the running machines again (host to guest). */
export async function rsyncProject(cwd: string, names: string[]): Promise<Array<{name: string; folders: string[]}>> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  const results: Array<{name: string; folders: string[]}> = []
  for (const machine of machines) {
    const folders = machine.syncedFolders.filter((folder) => folder.type === 'rsync')
    if (folders.length > 0) {
      const target = await runningTarget(project.dir, machine.name)
      for (const folder of folders) await rsyncFolder(folder, target, () => {})
    }
    results.push({name: machine.name, folders: folders.map((folder) => `${folder.host} -> ${folder.guest}`)})
  }
  return results
}
