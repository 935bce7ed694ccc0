import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {pickMachine} from '../machine/fan-out.js'
import {suspendMachine, type SuspendResult} from '../machine/suspend.js'

export default class Suspend extends BaseCommand<SuspendResult> {
  static override summary = "Save a running machine's state to its directory and stop it (state saved)."
  static override description =
    '"vm resume" or "vm up" continues it where it was; "vm halt" discards the saved state (after asking); "vm destroy" removes it.'
  static override examples = ['<%= config.bin %> suspend', '<%= config.bin %> suspend web']
  static override args = {machine: Args.string({description: 'Machine (default: the primary one).'})}

  async run(): Promise<SuspendResult> {
    const {args, flags} = await this.parse(Suspend)
    const {project, name} = pickMachine(this.cwd(flags), args.machine)
    const result = await suspendMachine(project.dir, name)
    this.say(`[${name}] ${result.was === 'saved' ? 'was suspended already' : 'suspended (state saved)'}`)
    return result
  }
}
