import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {globalStatus, type GlobalStatus} from '../machine/global-status.js'

export default class GlobalStatusCommand extends BaseCommand<GlobalStatus> {
  static override summary = 'Show the machines of every project on this host.'
  static override flags = {
    prune: Flags.boolean({summary: 'Drop entries whose project directory or machine has gone.'}),
  }

  async run(): Promise<GlobalStatus> {
    const {flags} = await this.parse(GlobalStatusCommand)
    const result = await globalStatus(flags.prune)
    if (result.machines.length === 0) this.say('No machines on this host.')
    for (const m of result.machines) {
      const ssh = m.ssh === undefined ? '' : `  ssh ${m.ssh.host}:${m.ssh.port}`
      this.say(`${m.id.slice(0, 7)}  ${m.name.padEnd(12)} ${m.state.padEnd(11)} ${m.projectDir}${ssh}`)
      if (m.problem !== undefined) this.say(`         ${m.problem}`)
    }
    if (result.gone.length > 0) {
      this.say(
        `${result.gone.length} stale ${result.gone.length === 1 ? 'entry' : 'entries'} (project gone)${flags.prune ? ' removed' : '; --prune removes them'}.`,
      )
    }
    return result
  }
}
