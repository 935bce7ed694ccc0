import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {writeCatalogs, type WriteCatalogResult} from '../../box/catalog-write.js'

export default class BoxCatalog extends BaseCommand<WriteCatalogResult> {
  static override summary = 'Write or update the catalog JSON for the .box files in a directory.'
  static override description = `Reads every DIR/*.box (name and version from its metadata.json, or from NAME-VERSION-ARCH.box), and writes DIR/<box>.json with sha256 checksums and sizes. Serve DIR over HTTP or list it in VM_BOX_REGISTRIES.

Without --base-url the box URLs are relative to the catalog: vm resolves them against the catalog's URL, but Vagrant resolves them against its own working directory, so Vagrant cannot use such a catalog. With --base-url URL (the URL DIR is served at) the box URLs are absolute, and each catalog of a box named org/box is also written as DIR/org/box, the path Vagrant asks for when VAGRANT_SERVER_URL=URL and \`vagrant box add org/box\`; vm finds it there too (VM_BOX_REGISTRIES=URL or DIR). Vagrant takes DIR/org/box for a catalog only when the server sends it as Content-Type: application/json; most servers type a file without an extension as application/octet-stream, so configure that (nginx: default_type application/json).`

  static override examples = [
    '<%= config.bin %> box catalog boxes/dist/vmfile',
    '<%= config.bin %> box catalog /srv/boxes --base-url https://boxes.example.com',
  ]

  static override args = {
    dir: Args.directory({description: 'Directory holding .box files.', required: true, exists: true}),
  }

  static override flags = {
    name: Flags.string({summary: 'Box name for archives whose metadata names none.'}),
    description: Flags.string({summary: 'Description to put in the catalog.'}),
    'base-url': Flags.string({
      summary: 'URL that DIR is served at: write absolute box URLs and DIR/org/box, as Vagrant needs.',
    }),
  }

  async run(): Promise<WriteCatalogResult> {
    const {args, flags} = await this.parse(BoxCatalog)
    this.setDebug(flags.debug)
    const result = await writeCatalogs({
      dir: args.dir,
      name: flags.name,
      description: flags.description,
      baseUrl: flags['base-url'],
    })
    for (const catalog of result.catalogs) {
      const files = catalog.serverFile === undefined ? catalog.file : `${catalog.file} and ${catalog.serverFile}`
      this.say(`Wrote ${files}: ${catalog.name} ${catalog.versions.join(', ')}`)
    }
    return result
  }
}
