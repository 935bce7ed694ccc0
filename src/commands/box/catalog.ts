import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {writeCatalogs, type WriteCatalogResult} from '../../box/catalog-write.js'

export default class BoxCatalog extends BaseCommand<WriteCatalogResult> {
  static override summary = 'Write or update the catalog JSON for the .box files in a directory.'
  static override description =
    'Reads every DIR/*.box (name and version from its metadata.json, or from NAME-VERSION-ARCH.box), and writes DIR/<box>.json with relative URLs, sha256 checksums and sizes. Serve DIR over HTTP or list it in VM_BOX_REGISTRIES.'

  static override examples = ['<%= config.bin %> box catalog boxes/dist/vmfile']

  static override args = {
    dir: Args.directory({description: 'Directory holding .box files.', required: true, exists: true}),
  }

  static override flags = {
    name: Flags.string({summary: 'Box name for archives whose metadata names none.'}),
    description: Flags.string({summary: 'Description to put in the catalog.'}),
  }

  async run(): Promise<WriteCatalogResult> {
    const {args, flags} = await this.parse(BoxCatalog)
    this.setDebug(flags.debug)
    const result = await writeCatalogs({dir: args.dir, name: flags.name, description: flags.description})
    for (const catalog of result.catalogs) this.say(`Wrote ${catalog.file}: ${catalog.name} ${catalog.versions.join(', ')}`)
    return result
  }
}
