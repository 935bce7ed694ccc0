import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pickMachine} from '../../machine/fan-out.js'
import {machineAndSnapshot} from '../../machine/snapshot-rules.js'
import {deleteSnapshot, type SnapshotResult} from '../../machine/snapshot.js'

export default class SnapshotDelete extends BaseCommand<SnapshotResult> {
  static override summary = "Delete a machine's snapshot."
  static override examples = ['<%= config.bin %> snapshot delete before-upgrade', '<%= config.bin %> snapshot delete web before-upgrade']
  static override args = {
    machine: Args.string({description: 'Machine (default: the primary one), or the snapshot when only one argument is given.'}),
    snapshot: Args.string({description: 'Name of the snapshot.'}),
  }

  async run(): Promise<SnapshotResult> {
    const {args, flags} = await this.parse(SnapshotDelete)
    const {machine, snapshot} = machineAndSnapshot([args.machine, args.snapshot], 'delete')
    const {project, name} = pickMachine(this.cwd(flags), machine)
    const result = await deleteSnapshot(project.dir, name, snapshot)
    this.say(`[${name}] snapshot ${snapshot} deleted`)
    return result
  }
}
