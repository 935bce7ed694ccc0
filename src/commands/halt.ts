import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {escapeControl} from '../cli/terminal-text.js'
import type {HaltResult} from '../machine/halt.js'
import {failuresError, haltProject, statusProject} from '../machine/fan-out.js'

export default class Halt extends BaseCommand<{machines: HaltResult[]}> {
  static override summary = 'Shut machines down: ACPI power-down, then quit, then kill.'
  static override description =
    'A suspended machine (state saved) has its saved state discarded: vm asks first on a terminal; without one it refuses unless -f is given.'
  static override examples = ['<%= config.bin %> halt', '<%= config.bin %> halt web -f']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to halt (default: all).'})}
  static override flags = {
    force: Flags.boolean({
      char: 'f',
      summary: 'Do not wait for the guest to power off: stop QEMU at once; discard saved states without asking.',
    }),
    timeout: Flags.integer({summary: 'Seconds to wait for the guest to power off.', default: 60, min: 0}),
  }

  async run(): Promise<{machines: HaltResult[]}> {
    const {argv, flags} = await this.parse(Halt)
    const names = argv as string[]
    let discardSaved = flags.force
    if (!discardSaved && process.stdin.isTTY && !this.jsonEnabled()) {
      const {machines} = await statusProject(this.cwd(flags), names)
      const saved = machines.filter((machine) => machine.state === 'saved').map((machine) => machine.name)
      if (saved.length > 0) {
        const {createInterface} = await import('node:readline/promises')
        const prompt = createInterface({input: process.stdin, output: process.stderr})
        const answer = await prompt.question(
          `${escapeControl(saved.join(', '))} ${saved.length === 1 ? 'is' : 'are'} suspended; halting discards the saved state. Halt anyway? [y/N] `,
        )
        prompt.close()
        discardSaved = /^y(es)?$/i.test(answer.trim())
      }
    }
    const {results, failures} = await haltProject(
      this.cwd(flags),
      names,
      flags.force ? 0 : flags.timeout * 1000,
      (name) => this.machineEvents(name),
      {discardSaved},
    )
    for (const result of results) {
      const how = {
        acpi: 'powered off',
        quit: 'stopped (QEMU quit)',
        killed: 'killed',
        'already-stopped': 'was not running',
        'discarded-saved-state': 'saved state discarded (powered off)',
        'not-created': 'not created',
      }[result.method]
      this.say(`[${result.name}] ${how}`)
    }
    const error = failuresError('vm halt', failures)
    if (error !== undefined) throw error
    return {machines: results}
  }
}
