import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {showGlobalStatus} from '../cli/fast/global-status.js'
import type {GlobalStatus} from '../machine/global-status.js'

export default class GlobalStatusCommand extends BaseCommand<GlobalStatus> {
  static override summary = 'Show the machines of every project on this host.'
  static override description =
    'The ID column (or any unique prefix of at least 4 characters) names the machine from any directory, wherever a command takes a machine name: vm ssh ID, vm halt ID, vm status ID.'
  static override flags = {
    prune: Flags.boolean({summary: 'Drop entries whose project directory or machine has gone.'}),
  }

  // The work is shared with bin/run.js's fast path (src/cli/fast/global-status.ts).
  async run(): Promise<GlobalStatus> {
    const {flags} = await this.parse(GlobalStatusCommand)
    return showGlobalStatus(this.output, flags.prune)
  }
}
