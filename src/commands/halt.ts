import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import type {HaltResult} from '../machine/halt.js'
import {failuresError, haltProject} from '../machine/fan-out.js'

export default class Halt extends BaseCommand<{machines: HaltResult[]}> {
  static override summary = 'Shut machines down: ACPI power-down, then quit, then kill.'
  static override examples = ['<%= config.bin %> halt', '<%= config.bin %> halt web -f']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to halt (default: all).'})}
  static override flags = {
    force: Flags.boolean({char: 'f', summary: 'Do not wait for the guest to power off: stop QEMU at once.'}),
    timeout: Flags.integer({summary: 'Seconds to wait for the guest to power off.', default: 60, min: 0}),
  }

  async run(): Promise<{machines: HaltResult[]}> {
    const {argv, flags} = await this.parse(Halt)
    const {results, failures} = await haltProject(this.cwd(flags), argv as string[], flags.force ? 0 : flags.timeout * 1000, (name) =>
      this.machineEvents(name),
    )
    for (const result of results) {
      const how = {
        acpi: 'powered off',
        quit: 'stopped (QEMU quit)',
        killed: 'killed',
        'already-stopped': 'was not running',
        'not-created': 'not created',
      }[result.method]
      this.say(`[${result.name}] ${how}`)
    }
    const error = failuresError('vm halt', failures)
    if (error !== undefined) throw error
    return {machines: results}
  }
}
