import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pickMachine} from '../../machine/fan-out.js'
import {machineAndSnapshot} from '../../machine/snapshot-rules.js'
import {saveSnapshot, type SnapshotResult} from '../../machine/snapshot.js'

export default class SnapshotSave extends BaseCommand<SnapshotResult> {
  static override summary = 'Take a snapshot of a machine: live with its memory while it runs, of its disks when halted.'
  static override description =
    "Snapshots live in the machine's disks: they survive halt and go with destroy. While a 9p synced folder is mounted QEMU cannot save, so vm unmounts it in the guest for the save and mounts it again after."
  static override examples = ['<%= config.bin %> snapshot save before-upgrade', '<%= config.bin %> snapshot save web before-upgrade']
  static override args = {
    machine: Args.string({description: 'Machine (default: the primary one), or the snapshot when only one argument is given.'}),
    snapshot: Args.string({description: 'Name of the snapshot.'}),
  }

  async run(): Promise<SnapshotResult> {
    const {args, flags} = await this.parse(SnapshotSave)
    const {machine, snapshot} = machineAndSnapshot([args.machine, args.snapshot], 'save')
    const {project, name} = pickMachine(this.cwd(flags), machine)
    const result = await saveSnapshot(project.dir, name, snapshot)
    this.say(`[${name}] snapshot ${snapshot} saved (${result.memory ? 'with memory' : 'disks only'})`)
    return result
  }
}
