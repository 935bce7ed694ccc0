import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pickMachine} from '../../machine/fan-out.js'
import {machineAndSnapshot} from '../../machine/snapshot-rules.js'
import {restoreSnapshot, type SnapshotResult} from '../../machine/snapshot.js'

export default class SnapshotRestore extends BaseCommand<SnapshotResult> {
  static override summary = 'Put a machine back to a snapshot: running where it was for a snapshot with memory, halted for a disk snapshot.'
  static override description =
    'A snapshot with memory brings the machine back running, exactly where it was (booted from the snapshot when the machine is halted); its clock is set from the host and its synced folders mounted again. A snapshot taken on another box version or disk size is refused.'
  static override examples = ['<%= config.bin %> snapshot restore before-upgrade', '<%= config.bin %> snapshot restore web before-upgrade']
  static override args = {
    machine: Args.string({description: 'Machine (default: the primary one), or the snapshot when only one argument is given.'}),
    snapshot: Args.string({description: 'Name of the snapshot.'}),
  }

  async run(): Promise<SnapshotResult> {
    const {args, flags} = await this.parse(SnapshotRestore)
    const {machine, snapshot} = machineAndSnapshot([args.machine, args.snapshot], 'restore')
    const {project, name} = pickMachine(this.cwd(flags), machine)
    const config = project.machines.find((candidate) => candidate.name === name)!
    const result = await restoreSnapshot(project.dir, config, snapshot, this.machineEvents(name))
    this.say(`[${name}] restored snapshot ${snapshot} (${result.state})`)
    return result
  }
}
