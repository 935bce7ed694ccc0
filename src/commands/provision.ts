import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {provisionWithFlag} from '../cli/provision-flags.js'
import {failuresError, provisionProject} from '../machine/fan-out.js'

export default class Provision extends BaseCommand<{machines: Array<{name: string; ran: string[]}>}> {
  static override summary = 'Run the provisioners of running machines.'
  static override description =
    'Runs every provisioner with run: once or always (or only those named with --provision-with, including run: never ones).'
  static override examples = ['<%= config.bin %> provision', '<%= config.bin %> provision web --provision-with packages,app']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines (default: all).'})}
  static override flags = {
    'provision-with': provisionWithFlag,
  }

  async run(): Promise<{machines: Array<{name: string; ran: string[]}>}> {
    const {argv, flags} = await this.parse(Provision)
    const {results, failures} = await provisionProject(this.cwd(flags), argv as string[], flags['provision-with'], (name) =>
      this.machineEvents(name),
    )
    const error = failuresError('vm provision', failures)
    if (error !== undefined) throw error
    for (const result of results) if (result.ran.length === 0) this.say(`[${result.name}] no provisioners to run`)
    return {machines: results}
  }
}
