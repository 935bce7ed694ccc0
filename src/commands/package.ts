import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {formatBytes} from '../cli/progress.js'
import {pickMachine} from '../machine/fan-out.js'
import {packageMachine, type PackageResult} from '../machine/package.js'

export default class Package extends BaseCommand<PackageResult> {
  static override summary = 'Turn a machine into a box (libvirt box format, read by vm box add and vagrant box add).'
  static override description =
    "Prepares the running guest (the box's first-login key back; the machine's own key, SSH host keys and machine-id removed), powers it off, and writes its disk flattened and compressed, with metadata.json, the kernel and initrd when the box boots directly, a Vagrantfile and --include files. The machine is left powered off; its next vm up gives it a new key of its own. Without a name, the primary machine."

  static override examples = [
    '<%= config.bin %> package',
    '<%= config.bin %> package web --output web.box',
    '<%= config.bin %> package --vagrantfile Vagrantfile.pkg --include README.md',
  ]

  static override args = {name: Args.string({description: 'Machine (default: the primary one).'})}
  static override flags = {
    output: Flags.string({char: 'o', summary: 'File to write (default package.box here).'}),
    vagrantfile: Flags.string({summary: 'Vagrantfile to ship in the box instead of the default one.'}),
    include: Flags.string({
      summary: 'File to ship in the box under include/ (repeat the flag, or separate files with commas as in Vagrant).',
      multiple: true,
      multipleNonGreedy: true,
      delimiter: ',',
    }),
    force: Flags.boolean({char: 'f', summary: 'Overwrite the output file.'}),
    timeout: Flags.integer({summary: 'Seconds to wait for the guest to power off.', default: 60, min: 0}),
  }

  async run(): Promise<PackageResult> {
    const {args, flags} = await this.parse(Package)
    this.setDebug(flags.debug)
    const cwd = this.cwd(flags)
    const {project, name} = pickMachine(cwd, args.name)
    const result = await packageMachine(
      project.dir,
      name,
      {output: flags.output, vagrantfile: flags.vagrantfile, include: flags.include, force: flags.force, cwd, haltTimeout: flags.timeout},
      this.machineEvents(name),
    )
    this.say(`[${name}] Wrote ${result.file} (${formatBytes(result.size)}, sha256 ${result.sha256}); the machine is powered off`)
    return result
  }
}
