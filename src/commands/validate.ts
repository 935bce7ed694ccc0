import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {validateProject, type ValidateResult} from '../vmfile/index.js'

export default class Validate extends BaseCommand<ValidateResult> {
  static override summary = 'Check the Vmfile and report every problem at once.'
  static override description =
    'Finds the Vmfile in the current directory or the nearest parent (or reads FILE), checks it against the schema and prints "Vmfile is valid", or each problem as FILE:LINE:COL key.path: message and exits 1. Warns (without failing) about a box that "vm up" would not find in the box store or the registries.'

  static override examples = ['<%= config.bin %> validate', '<%= config.bin %> validate path/to/Vmfile --json']

  static override args = {
    file: Args.string({description: 'Vmfile to check instead of the project one.'}),
  }

  async run(): Promise<ValidateResult> {
    const {args, flags} = await this.parse(Validate)
    const result = await validateProject(this.cwd(flags), args.file, (text) => this.warn(text))
    this.say(
      this.out.green('Vmfile is valid'),
      ` (${result.machines.length === 1 ? 'machine' : 'machines'}: ${result.machines.join(', ')})`,
    )
    return result
  }
}
