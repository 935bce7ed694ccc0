import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {copyFiles, parseCopySpec, type CopyResult} from '../machine/copy.js'

export default class Cp extends BaseCommand<CopyResult> {
  static override summary = 'Copy files and directories between the host and machines, or between two machines.'
  static override description =
    'Over the machines\' SSH, as cp would: into a directory that exists, else under the name given (its directory must exist). Write a path in a machine as NAME:PATH (":PATH" for the primary machine); relative paths there start in the login user\'s home. Directories need -r. Files keep their permission bits.'

  static override examples = [
    '<%= config.bin %> cp ./notes.txt web:/tmp/',
    '<%= config.bin %> cp web:/var/log/syslog .',
    '<%= config.bin %> cp -r ./site web:site',
    '<%= config.bin %> cp -r web:/etc/nginx db:nginx-copy',
  ]
  static override args = {
    source: Args.string({description: 'What to copy: PATH on the host or NAME:PATH in a machine.', required: true}),
    destination: Args.string({description: 'Where to: PATH on the host or NAME:PATH in a machine.', required: true}),
  }
  static override flags = {
    recursive: Flags.boolean({char: 'r', summary: 'Copy directories and everything in them.'}),
  }

  async run(): Promise<CopyResult> {
    const {args, flags} = await this.parse(Cp)
    const result = await copyFiles(this.cwd(flags), parseCopySpec(args.source), parseCopySpec(args.destination), flags.recursive)
    const where = (side: {machine?: string; path: string}): string =>
      side.machine === undefined ? side.path : `${side.machine}:${side.path}`
    this.say(`Copied ${result.kind} ${where(result.from)} to ${where(result.to)} (${result.bytes} bytes)`)
    return result
  }
}
