import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {validateVmfile} from '../cli/fast/validate.js'
import type {ValidateResult} from '../vmfile/index.js'

export default class Validate extends BaseCommand<ValidateResult> {
  static override summary = 'Check the Vmfile and report every problem at once.'
  static override description =
    'Finds the Vmfile in the current directory or the nearest parent (or reads FILE), checks it against the schema and prints "Vmfile is valid", or each problem as FILE:LINE:COL key.path: message and exits 1. Warns (without failing) about a box that "vm up" would not find in the box store or the registries.'

  static override examples = ['<%= config.bin %> validate', '<%= config.bin %> validate path/to/Vmfile --json']

  static override args = {
    file: Args.string({description: 'Vmfile to check instead of the project one.'}),
  }

  // The work is shared with bin/run.js's fast path (src/cli/fast/validate.ts).
  async run(): Promise<ValidateResult> {
    const {args, flags} = await this.parse(Validate)
    return validateVmfile(this.output, this.cwd(flags), args.file)
  }
}
