import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags, withInterrupt} from '../../cli/box-flags.js'
import {formatBytes, ProgressReporter} from '../../cli/progress.js'
import {readCaFile} from '../../box/oci/client.js'
import {pushBox, type PushResult} from '../../box/oci/push.js'

export default class BoxPush extends BaseCommand<PushResult> {
  static override summary = 'Upload a stored box to an OCI registry.'
  static override description = `BOX is NAME or NAME@VERSION (default: the newest stored version). TARGET is oci://HOST[:PORT]/REPOSITORY[:TAG]; the tag defaults to the box's version. The box's files are split into content-defined chunks, each an OCI blob: blobs the registry already has (from an earlier version) are not sent again. Credentials come from vm box login or Docker's config. Plain http is used only for 127.0.0.1/localhost, or with --insecure.`

  static override examples = [
    '<%= config.bin %> box push vmfile/tiny oci://registry.example.org/boxes/tiny',
    '<%= config.bin %> box push vmfile/tiny@1.0.1 oci://127.0.0.1:5000/boxes/tiny:1.0.1',
  ]

  static override args = {
    box: Args.string({description: 'NAME or NAME@VERSION of a stored box.', required: true}),
    target: Args.string({description: 'oci://HOST[:PORT]/REPOSITORY[:TAG]', required: true}),
  }

  static override flags = {
    architecture: Flags.string({summary: "Architecture of the stored box (default: this host's)."}),
    ...downloadFlags,
  }

  async run(): Promise<PushResult> {
    const {args, flags} = await this.parse(BoxPush)
    this.setDebug(flags.debug)
    let reporter: ProgressReporter | undefined
    const result = await withInterrupt(async (signal) =>
      pushBox({
        box: args.box,
        target: args.target,
        architecture: flags.architecture,
        insecure: flags.insecure,
        cacert: await readCaFile(flags.cacert),
        signal,
        onStatus: (message) => this.status(message),
        onProgress: (progress) => {
          if (this.jsonEnabled()) return
          reporter ??= new ProgressReporter(process.stderr, 'Uploading')
          reporter.update(progress)
        },
      }).finally(() => reporter?.finish()),
    )
    this.say(
      this.out.green('Pushed'),
      ` ${result.name} ${result.version} to ${result.reference} (${result.digest}): ${formatBytes(result.bytesSent)} sent, ${formatBytes(result.bytesReused)} of ${result.blobs} blobs already there`,
    )
    return result
  }
}
