import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags} from '../../cli/box-flags.js'
import {readCaFile} from '../../box/oci/client.js'
import {checkOutdated, type OutdatedEntry} from '../../box/outdated.js'

export default class BoxOutdated extends BaseCommand<{boxes: OutdatedEntry[]}> {
  static override summary = "Check whether the project's boxes have newer versions."
  static override description =
    'Compares the boxes the Vmfile uses (or, with --global, every stored box) with their catalogs. Catalogs are cached for an hour; --refresh fetches them again.'
  static override examples = ['<%= config.bin %> box outdated', '<%= config.bin %> box outdated --global']

  static override flags = {
    global: Flags.boolean({summary: 'Check every box in the store instead of the project.'}),
    refresh: Flags.boolean({summary: 'Ignore the one-hour catalog cache.'}),
    insecure: downloadFlags.insecure,
    cacert: downloadFlags.cacert,
  }

  async run(): Promise<{boxes: OutdatedEntry[]}> {
    const {flags} = await this.parse(BoxOutdated)
    this.setDebug(flags.debug)
    const boxes = await checkOutdated({
      cwd: this.cwd(flags),
      global: flags.global,
      refresh: flags.refresh,
      insecure: flags.insecure,
      cacert: await readCaFile(flags.cacert),
      token: process.env.VM_BOX_TOKEN,
    })
    if (boxes.length === 0) this.say('There are no boxes to check.')
    for (const box of boxes) {
      const where = `${box.name}${box.constraint === undefined ? '' : ` (${box.constraint})`}`
      if (box.problem !== undefined) this.warn(`${where}: cannot check: ${box.problem}`)
      else if (box.installed === undefined)
        this.say(`${where}: not in the store; ${box.latest ?? 'no version'} is available (vm box update adds it)`)
      else if (box.outdated) this.say(this.out.yellow(where), `: ${box.installed} is outdated; ${box.latest} is available (vm box update)`)
      else this.say(`${where}: ${box.installed} is the newest${box.constraint === undefined ? '' : ' allowed'}`)
    }
    return {boxes}
  }
}
