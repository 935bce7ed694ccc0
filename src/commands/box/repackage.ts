import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {formatBytes} from '../../cli/progress.js'
import {repackageBox, type RepackageResult} from '../../box/repackage.js'

export default class BoxRepackage extends BaseCommand<RepackageResult> {
  static override summary = 'Write a stored box back out as a .box file.'
  static override examples = [
    '<%= config.bin %> box repackage vmfile/tiny 1.0.0',
    '<%= config.bin %> box repackage vmfile/tiny 1.0.0 --output tiny.box',
  ]

  static override args = {
    name: Args.string({description: 'Box name.', required: true}),
    version: Args.string({description: 'Box version.', required: true}),
  }

  static override flags = {
    provider: Flags.string({summary: 'Provider, when several are stored.'}),
    architecture: Flags.string({summary: 'Architecture, when several are stored.'}),
    output: Flags.string({char: 'o', summary: 'File to write (default NAME-VERSION-ARCH.box here).'}),
    force: Flags.boolean({char: 'f', summary: 'Overwrite the output file.'}),
  }

  async run(): Promise<RepackageResult> {
    const {args, flags} = await this.parse(BoxRepackage)
    this.setDebug(flags.debug)
    const result = await repackageBox({
      name: args.name,
      version: args.version,
      provider: flags.provider,
      architecture: flags.architecture,
      output: flags.output,
      force: flags.force,
      cwd: this.cwd(flags),
    })
    this.say(`Wrote ${result.file} (${formatBytes(result.size)}, sha256 ${result.sha256})`)
    return result
  }
}
