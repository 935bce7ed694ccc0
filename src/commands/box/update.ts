import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags, withInterrupt} from '../../cli/box-flags.js'
import {ProgressReporter} from '../../cli/progress.js'
import {readCaFile} from '../../box/oci/client.js'
import {updateBoxes, type UpdateResult} from '../../box/outdated.js'

export default class BoxUpdate extends BaseCommand<{updated: UpdateResult[]}> {
  static override summary = "Add the newest allowed version of the project's boxes."
  static override description = 'Old versions stay in the store (machines keep using theirs); "vm box prune" removes unused ones.'
  static override examples = ['<%= config.bin %> box update', '<%= config.bin %> box update --global --box vmfile/tiny']

  static override flags = {
    box: Flags.string({summary: 'Only this box.'}),
    global: Flags.boolean({summary: 'Update every box in the store instead of the project.'}),
    ...downloadFlags,
  }

  async run(): Promise<{updated: UpdateResult[]}> {
    const {flags} = await this.parse(BoxUpdate)
    this.setDebug(flags.debug)
    let reporter: ProgressReporter | undefined
    const {updated, checked} = await withInterrupt(async (signal) =>
      updateBoxes({
        cwd: this.cwd(flags),
        global: flags.global,
        box: flags.box,
        insecure: flags.insecure,
        cacert: await readCaFile(flags.cacert),
        token: process.env.VM_BOX_TOKEN,
        signal,
        add: {
          cacert: flags.cacert,
          onStatus: (message) => {
            reporter?.finish()
            this.status(message)
          },
          onProgress: (progress) => {
            if (this.jsonEnabled()) return
            reporter ??= new ProgressReporter(process.stderr, 'Downloading')
            reporter.update(progress)
          },
        },
      }).finally(() => reporter?.finish()),
    )
    for (const entry of checked) if (entry.problem !== undefined) this.warn(`${entry.name}: cannot check: ${entry.problem}`)
    for (const entry of updated) this.say(`Updated ${entry.name}: ${entry.from ?? 'none'} -> ${entry.to}`)
    if (updated.length === 0) this.say('Every box is up to date.')
    return {updated}
  }
}
