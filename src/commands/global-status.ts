import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {renderTable} from '../cli/table.js'
import {globalStatus, type GlobalStatus} from '../machine/global-status.js'

export default class GlobalStatusCommand extends BaseCommand<GlobalStatus> {
  static override summary = 'Show the machines of every project on this host.'
  static override description =
    'The ID column (or any unique prefix of at least 4 characters) names the machine from any directory, wherever a command takes a machine name: vm ssh ID, vm halt ID, vm status ID.'
  static override flags = {
    prune: Flags.boolean({summary: 'Drop entries whose project directory or machine has gone.'}),
  }

  async run(): Promise<GlobalStatus> {
    const {flags} = await this.parse(GlobalStatusCommand)
    const result = await globalStatus(flags.prune)
    if (result.machines.length === 0) this.say('No machines on this host.')
    if (result.machines.length > 0) {
      const rows = result.machines.map((m) => [
        m.id.slice(0, 7),
        m.name,
        m.state,
        m.host ?? '-',
        m.ssh === undefined ? '-' : `${m.ssh.host}:${m.ssh.port}`,
        m.projectDir,
      ])
      this.sayLines(renderTable(['ID', 'NAME', 'STATE', 'HOST', 'SSH', 'DIRECTORY'], rows))
      for (const m of result.machines) if (m.problem !== undefined) this.warn(`[${m.id.slice(0, 7)} ${m.name}] ${m.problem}`)
      this.say('')
      this.say('An id (or its first characters) names the machine from any directory: vm ssh ID, vm halt ID, vm status ID.')
    }
    if (result.gone.length > 0) {
      this.say(
        `${result.gone.length} stale ${result.gone.length === 1 ? 'entry' : 'entries'} (project gone)${flags.prune ? ' removed' : '; --prune removes them'}.`,
      )
    }
    return result
  }
}
