import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {unreachableBoxWarnings} from '../box/locate.js'
import {BaseCommand} from '../cli/base-command.js'
import {DEFAULT_BOX, initVmfile, type InitResult} from '../project/init.js'

export default class Init extends BaseCommand<Omit<InitResult, 'content'> & {content?: string}> {
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
    output: Flags.string({char: 'o', summary: 'Where to write it; "-" prints it to stdout.', default: 'Vmfile'}),
    'box-version': Flags.string({summary: 'Version constraint to put in the Vmfile, e.g. ">= 1.0".'}),
  }

  async run(): Promise<Omit<InitResult, 'content'> & {content?: string}> {
    const {args, flags} = await this.parse(Init)
    const result = await initVmfile(this.cwd(flags), flags.output, {
      box: args.box,
      boxVersion: flags['box-version'],
      minimal: flags.minimal,
      force: flags.force,
    })
    const dir = result.path === '-' ? this.cwd(flags) : path.dirname(result.path)
    for (const warning of await unreachableBoxWarnings([{machine: 'default', box: result.box, boxVersion: flags['box-version']}], dir))
      this.warn(warning)
    if (result.path === '-') {
      if (this.jsonEnabled()) return result
      process.stdout.write(result.content)
      return result
    }
    this.say(`Wrote ${result.path} (box ${result.box}). Next: vm validate, then vm up.`)
    const {content: _content, ...rest} = result
    return rest
  }
}
