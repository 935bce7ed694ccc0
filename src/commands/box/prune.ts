import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {pruneBoxes, type PruneResult} from '../../box/prune.js'

export default class BoxPrune extends BaseCommand<PruneResult> {
  static override summary = 'Remove old box versions that no machine uses.'
  static override description = 'Keeps the newest version of each box (per architecture and provider) and every version a machine uses.'
  static override examples = ['<%= config.bin %> box prune --dry-run', '<%= config.bin %> box prune']

  static override flags = {
    'dry-run': Flags.boolean({char: 'n', summary: 'Only show what would be removed.'}),
  }

  async run(): Promise<PruneResult> {
    const {flags} = await this.parse(BoxPrune)
    this.setDebug(flags.debug)
    const result = await pruneBoxes({dryRun: flags['dry-run']})
    const verb = result.dryRun ? 'Would remove' : 'Removed'
    for (const key of result.removed) this.say(`${verb} ${key.name} ${key.version} (${key.architecture}, ${key.provider})`)
    for (const key of result.kept.filter((entry) => entry.reason === 'in use'))
      this.say(`Kept ${key.name} ${key.version} (${key.architecture}, ${key.provider}): used by ${(key.users ?? []).join('; ')}`)
    if (result.removed.length === 0) this.say('Nothing to prune.')
    return result
  }
}
