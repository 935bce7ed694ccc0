import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {DEFAULT_INIT_OUTPUT, initProject, type InitOutcome} from '../cli/fast/init.js'
import {DEFAULT_BOX} from '../project/init.js'

export default class Init extends BaseCommand<InitOutcome> {
  static override summary = 'Write a Vmfile for this project.'
  static override description = `Writes ./Vmfile from a commented template that shows every key with its default. BOX defaults to ${DEFAULT_BOX}. Warns (without failing) when "vm up" would not find the box in the box store or the registries.`

  static override examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init vmfile/tiny --minimal',
    '<%= config.bin %> init --output - > Vmfile.new',
  ]

  static override args = {
    box: Args.string({description: `Box name (default ${DEFAULT_BOX}).`}),
  }

  static override flags = {
    force: Flags.boolean({char: 'f', summary: 'Replace an existing Vmfile.'}),
    minimal: Flags.boolean({char: 'm', summary: 'Write a short Vmfile without comments.'}),
    output: Flags.string({char: 'o', summary: 'Where to write it; "-" prints it to stdout.', default: DEFAULT_INIT_OUTPUT}),
    'box-version': Flags.string({summary: 'Version constraint to put in the Vmfile, e.g. ">= 1.0".'}),
  }

  // The work is shared with bin/run.js's fast path (src/cli/fast/init.ts).
  async run(): Promise<InitOutcome> {
    const {args, flags} = await this.parse(Init)
    return initProject(this.output, this.cwd(flags), {
      box: args.box,
      boxVersion: flags['box-version'],
      minimal: flags.minimal,
      force: flags.force,
      output: flags.output,
    })
  }
}
