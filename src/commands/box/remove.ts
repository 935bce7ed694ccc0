import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {removeBox, type RemoveBoxResult} from '../../box/remove.js'
import {describeUser} from '../../box/usage.js'
import {escapeControl} from '../../cli/terminal-text.js'

export default class BoxRemove extends BaseCommand<RemoveBoxResult> {
  static override summary = 'Remove a box from the local store.'
  static override description =
    'Refuses while a machine uses the box, and names the machine, unless --force. The box store records each machine that uses a box when the machine is created (and forgets it on destroy); a machine whose project directory is gone still counts, since the project may have moved.'
  static override examples = [
    '<%= config.bin %> box remove vmfile/tiny --box-version 1.0.0',
    '<%= config.bin %> box remove vmfile/tiny --all',
  ]

  static override args = {
    name: Args.string({description: 'Box name.', required: true}),
  }

  static override flags = {
    'box-version': Flags.string({summary: 'Version (or constraint) to remove.'}),
    all: Flags.boolean({summary: 'Remove every stored version.'}),
    provider: Flags.string({summary: 'Only this provider.'}),
    architecture: Flags.string({summary: 'Only this architecture.'}),
    force: Flags.boolean({char: 'f', summary: 'Remove even if machines use it.'}),
  }

  async run(): Promise<RemoveBoxResult> {
    const {args, flags} = await this.parse(BoxRemove)
    this.setDebug(flags.debug)
    const result = await removeBox({
      name: args.name,
      version: flags['box-version'],
      all: flags.all,
      provider: flags.provider,
      architecture: flags.architecture,
      force: flags.force,
    })
    for (const user of result.orphaned) this.warn(`${describeUser(user)}: it used the removed box and will not boot again`)
    for (const key of result.removed) this.say(`Removed box ${key.name} ${key.version} (${key.architecture}, ${key.provider})`)
    for (const held of result.heldOnHosts)
      this.say(escapeControl(`  ${held.box.name} ${held.box.version} still held on ${held.uri} (pool ${held.pool}, volume ${held.volume})`))
    return result
  }
}
