import {BaseCommand} from '../../cli/base-command.js'
import {formatBytes} from '../../cli/progress.js'
import {renderTable} from '../../cli/table.js'
import {listBoxes} from '../../box/store.js'

export interface BoxListEntry {
  name: string
  version: string
  architecture: string
  provider: string
  size: number
  dir: string
  source: string | undefined
}

export default class BoxList extends BaseCommand<{boxes: BoxListEntry[]}> {
  static override summary = 'List the boxes in the local store.'
  static override examples = ['<%= config.bin %> box list', '<%= config.bin %> box list --json']

  async run(): Promise<{boxes: BoxListEntry[]}> {
    const {flags} = await this.parse(BoxList)
    this.setDebug(flags.debug)
    const boxes = (await listBoxes()).map((box) => ({
      name: box.name,
      version: box.version,
      architecture: box.architecture,
      provider: box.provider,
      size: box.size,
      dir: box.dir,
      source: box.source?.catalogUrl ?? box.source?.url,
    }))
    if (boxes.length === 0) this.say('There are no boxes in the store. Add one with "vm box add NAME".')
    else {
      this.sayLines(
        renderTable(
          ['NAME', 'VERSION', 'ARCH', 'PROVIDER', 'SIZE'],
          boxes.map((box) => [box.name, box.version, box.architecture, box.provider, formatBytes(box.size)]),
        ),
      )
    }
    return {boxes}
  }
}
