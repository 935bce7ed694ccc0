import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {renderTable} from '../../cli/table.js'
import {pickMachine} from '../../machine/fan-out.js'
import {listSnapshots, type SnapshotEntry} from '../../machine/snapshot.js'

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`
}

export default class SnapshotList extends BaseCommand<{machine: string; snapshots: SnapshotEntry[]}> {
  static override summary = "List a machine's snapshots: when taken, memory included or not, sizes."
  static override description =
    'MEMORY is the size of the memory and device state a live snapshot holds ("no" for a disk snapshot); DISK the virtual size of the disks it was taken with.'
  static override examples = ['<%= config.bin %> snapshot list', '<%= config.bin %> snapshot list web --json']
  static override args = {machine: Args.string({description: 'Machine (default: the primary one).'})}

  async run(): Promise<{machine: string; snapshots: SnapshotEntry[]}> {
    const {args, flags} = await this.parse(SnapshotList)
    const {project, name} = pickMachine(this.cwd(flags), args.machine)
    const result = await listSnapshots(project.dir, name)
    if (result.snapshots.length === 0) this.say(`[${name}] no snapshots`)
    else
      this.sayLines(
        renderTable(
          ['NAME', 'CREATED', 'MEMORY', 'DISK'],
          result.snapshots.map((snapshot) => [
            snapshot.name,
            snapshot.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
            snapshot.memory ? mib(snapshot.memoryBytes) : 'no',
            snapshot.diskSizes === undefined ? '?' : snapshot.diskSizes.map((bytes) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`).join(', '),
          ]),
        ),
      )
    return result
  }
}
