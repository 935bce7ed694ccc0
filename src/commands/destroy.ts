import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {UsageError} from '../errors/errors.js'
import {escapeControl} from '../cli/terminal-text.js'
import type {DestroyResult} from '../machine/halt.js'
import {destroyProject, failuresError} from '../machine/fan-out.js'

export default class Destroy extends BaseCommand<{machines: DestroyResult[]}> {
  static override summary = 'Stop machines and delete their disks and state (never the box).'
  static override examples = ['<%= config.bin %> destroy -f', '<%= config.bin %> destroy db']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to destroy (default: all).'})}
  static override flags = {
    force: Flags.boolean({char: 'f', summary: 'Do not ask (needed when there is no terminal).'}),
  }

  async run(): Promise<{machines: DestroyResult[]}> {
    const {argv, flags} = await this.parse(Destroy)
    const names = argv as string[]
    if (!flags.force) {
      if (!process.stdin.isTTY || this.jsonEnabled()) {
        throw new UsageError('vm destroy deletes machine disks and needs confirmation', {hint: 'Pass -f to destroy without asking.'})
      }
      const {createInterface} = await import('node:readline/promises')
      const prompt = createInterface({input: process.stdin, output: process.stderr})
      const answer = await prompt.question(
        `Destroy ${names.length === 0 ? 'all machines of this project' : escapeControl(names.join(', '))} and their disks? [y/N] `,
      )
      prompt.close()
      if (!/^y(es)?$/i.test(answer.trim())) {
        this.say('Nothing destroyed.')
        return {machines: []}
      }
    }
    const {results, failures} = await destroyProject(this.cwd(flags), names)
    for (const result of results) this.say(`[${result.name}] ${result.destroyed ? 'destroyed' : 'not created'}`)
    const error = failuresError('vm destroy', failures)
    if (error !== undefined) throw error
    return {machines: results}
  }
}
