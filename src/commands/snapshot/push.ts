import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pickMachine} from '../../machine/fan-out.js'
import {pushSnapshot, type SnapshotResult} from '../../machine/snapshot.js'

export default class SnapshotPush extends BaseCommand<SnapshotResult> {
  static override summary = 'Take a snapshot named after the time (push-YYYYMMDD-HHMMSS); "vm snapshot pop" goes back to it.'
  static override examples = ['<%= config.bin %> snapshot push', '<%= config.bin %> snapshot push web']
  static override args = {machine: Args.string({description: 'Machine (default: the primary one).'})}

  async run(): Promise<SnapshotResult> {
    const {args, flags} = await this.parse(SnapshotPush)
    const {project, name} = pickMachine(this.cwd(flags), args.machine)
    const result = await pushSnapshot(project.dir, name)
    this.say(`[${name}] pushed snapshot ${result.snapshot} (${result.memory ? 'with memory' : 'disks only'})`)
    return result
  }
}
