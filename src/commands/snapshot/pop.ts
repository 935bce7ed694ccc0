import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pickMachine} from '../../machine/fan-out.js'
import {popSnapshot, type SnapshotResult} from '../../machine/snapshot.js'

export default class SnapshotPop extends BaseCommand<SnapshotResult> {
  static override summary = 'Restore the newest pushed snapshot, then delete it (unless --no-delete).'
  static override examples = ['<%= config.bin %> snapshot pop', '<%= config.bin %> snapshot pop web --no-delete']
  static override args = {machine: Args.string({description: 'Machine (default: the primary one).'})}
  static override flags = {
    delete: Flags.boolean({summary: 'Delete the snapshot once restored (--no-delete keeps it).', default: true, allowNo: true}),
  }

  async run(): Promise<SnapshotResult> {
    const {args, flags} = await this.parse(SnapshotPop)
    const {project, name} = pickMachine(this.cwd(flags), args.machine)
    const config = project.machines.find((candidate) => candidate.name === name)!
    const result = await popSnapshot(project.dir, config, !flags.delete, this.machineEvents(name))
    this.say(`[${name}] restored snapshot ${result.snapshot} (${result.state})${flags.delete ? ' and deleted it' : ''}`)
    return result
  }
}
