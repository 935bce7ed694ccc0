import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags, withInterrupt} from '../../cli/box-flags.js'
import {formatBytes, ProgressReporter} from '../../cli/progress.js'
import {addBox} from '../../box/add.js'
import {CHECKSUM_TYPES} from '../../box/catalog.js'
import {hostArchitecture} from '../../box/store.js'

export interface BoxAddResult {
  name: string
  version: string
  architecture: string
  provider: string
  dir: string
  size: number
  alreadyPresent: boolean
  url: string
  catalogUrl: string | undefined
  /** From an OCI registry: blob bytes downloaded, and bytes taken from stored boxes instead. */
  received?: number | undefined
  reused?: number | undefined
}

export default class BoxAdd extends BaseCommand<BoxAddResult> {
  static override summary = 'Download a box into the local store.'
  static override description = `SOURCE is a .box file or URL (tar, optionally gzip/zstd/xz-compressed), a bare qcow2 or raw disk image such as a distribution's cloud image (needs --name; stored as a cloud image whose machines are set up by cloud-init; its version is --box-version, 0 when absent), a folder holding an unpacked box (metadata.json and the disks it names, or Vagrant's ~/.vagrant.d/boxes/NAME, NAME/VERSION or NAME/VERSION/[ARCH/]PROVIDER folder: the newest version meeting --box-version is taken), a catalog (Vagrant box metadata JSON) path or URL, or a short name org/box looked up in the registries from VM_BOX_REGISTRIES (comma-separated base URLs or directories) and <config dir>/registries.json.

SOURCE may also be oci://HOST[:PORT]/REPOSITORY[:TAG] or @sha256:DIGEST, a box pushed with vm box push: only the chunks no stored box already holds are downloaded.

Interrupted downloads resume on the next run; VM_BOX_TOKEN is sent as a bearer token to servers when the URL carries no credentials.`

  static override examples = [
    '<%= config.bin %> box add vmfile/tiny',
    '<%= config.bin %> box add https://example.com/boxes/debian.json --box-version "~> 12.0"',
    '<%= config.bin %> box add ./disk.qcow2 --name local/disk',
  ]

  static override args = {
    source: Args.string({description: 'Box name, catalog, .box file, folder or URL.', required: true}),
  }

  static override flags = {
    'box-version': Flags.string({summary: 'Version constraint, e.g. ">= 1.0, < 2"; for a bare disk image, the version to store it under.'}),
    provider: Flags.string({summary: 'Provider to take from a catalog (default: qemu, then libvirt).', options: ['qemu', 'libvirt']}),
    architecture: Flags.string({summary: `Architecture to take from a catalog (default: this host's, ${hostArchitecture()}).`}),
    checksum: Flags.string({summary: 'Expected checksum of the download (hex).', dependsOn: ['checksum-type']}),
    'checksum-type': Flags.string({summary: 'Type of --checksum.', options: [...CHECKSUM_TYPES]}),
    name: Flags.string({summary: 'Name to store the box under (required for bare disk images).'}),
    force: Flags.boolean({char: 'f', summary: 'Replace the box if that version is already stored.'}),
    clean: Flags.boolean({summary: 'Discard a partial download instead of resuming it.'}),
    ...downloadFlags,
  }

  async run(): Promise<BoxAddResult> {
    const {args, flags} = await this.parse(BoxAdd)
    this.setDebug(flags.debug)
    const showProgress = !this.jsonEnabled()
    let reporter: ProgressReporter | undefined
    const result = await withInterrupt((signal) =>
      addBox({
        source: args.source,
        cwd: this.cwd(flags),
        name: flags.name,
        constraint: flags['box-version'],
        provider: flags.provider,
        architecture: flags.architecture,
        checksum: flags.checksum,
        checksumType: flags['checksum-type'],
        force: flags.force,
        clean: flags.clean,
        insecure: flags.insecure,
        cacert: flags.cacert,
        signal,
        onStatus: (message) => {
          reporter?.finish()
          this.status(message)
        },
        onProgress: (progress) => {
          if (!showProgress) return
          reporter ??= new ProgressReporter(process.stderr, 'Downloading')
          reporter.update(progress)
        },
      }).finally(() => reporter?.finish()),
    )
    const box = result.box
    const label = `${box.name} ${box.version} (${box.architecture}, ${box.provider})`
    if (result.alreadyPresent) this.say(`Box ${label} is already in the store; use --force to add it again.`)
    else this.say(this.out.green('Added box'), ` ${label}, ${formatBytes(box.size)}`)
    if (result.reused !== undefined && result.reused > 0)
      this.say(`${formatBytes(result.received ?? 0)} downloaded, ${formatBytes(result.reused)} reused from stored boxes`)
    return {
      name: box.name,
      version: box.version,
      architecture: box.architecture,
      provider: box.provider,
      dir: box.dir,
      size: box.size,
      alreadyPresent: result.alreadyPresent,
      url: result.url,
      catalogUrl: result.catalogUrl,
      ...(result.received === undefined ? {} : {received: result.received, reused: result.reused}),
    }
  }
}
