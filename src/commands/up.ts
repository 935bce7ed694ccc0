import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {provisionWithFlag} from '../cli/provision-flags.js'
import {BootProgress} from '../cli/spinner.js'
import {InterruptHandler} from '../process/interrupt.js'
import {failuresError, upProject} from '../machine/fan-out.js'
import type {UpResult} from '../machine/up.js'

export default class Up extends BaseCommand<{machines: UpResult[]}> {
  static override summary = 'Create and boot the machines of the Vmfile, then wait for SSH.'
  static override description =
    'Without names, starts every machine with autostart (all of them by default), in parallel. A machine that does not exist yet is created: its box is resolved and a copy-on-write overlay made on the box disk. A running machine is left alone; a halted one boots its existing disk.'

  static override examples = ['<%= config.bin %> up', '<%= config.bin %> up web db --no-parallel']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to start (default: the autostart ones).'})}
  static override flags = {
    parallel: Flags.boolean({summary: 'Start several machines at once.', default: true, allowNo: true}),
    provision: Flags.boolean({summary: 'Run the provisioners even if they ran before (--no-provision: never).', allowNo: true}),
    'provision-with': provisionWithFlag,
    provider: Flags.string({
      summary:
        "The engine of machines created by this up (qemu or libvirt); overrides the Vmfile's provider. Machines that exist keep theirs.",
      options: ['qemu', 'libvirt'],
    }),
  }

  async run(): Promise<{machines: UpResult[]}> {
    const {argv, flags} = await this.parse(Up)
    const names = argv as string[]
    // One line per booting machine on stderr (redrawn in place on a TTY); nothing with --json.
    const board = this.jsonEnabled() ? undefined : new BootProgress(process.stderr)
    // Ctrl-C while a machine boots stops that machine (or leaves it for the next vm up to finish).
    const interrupt = new InterruptHandler()
    const options = {provision: flags.provision, provisionWith: flags['provision-with'], interrupt, driver: flags.provider}
    const {results, failures, project} = await upProject(
      this.cwd(flags),
      names,
      flags.parallel,
      (name) => {
        const events = this.machineEvents(name, () => board?.clear())
        return {
          ...events,
          warn: (text) => {
            board?.clear()
            events.warn(text)
          },
          progress: (line) => board?.update(name, line),
          progressDone: () => board?.done(name),
        }
      },
      options,
    ).finally(() => {
      interrupt.dispose()
      board?.stop()
    })
    for (const result of results) {
      if (result.alreadyRunning) continue
      const seconds = result.bootMs === undefined ? '' : ` in ${(result.bootMs / 1000).toFixed(1)} s`
      this.say(
        `[${result.name}] `,
        this.out.green('running'),
        `: SSH on ${result.ssh?.host}:${result.ssh?.port}${seconds} (${result.accel}, box ${result.box.name} ${result.box.version})`,
      )
    }
    const error = failuresError('vm up', failures)
    if (error !== undefined) throw error
    if (results.length === 0) this.say(`No machine to start in ${project.file} (all have autostart: false); name one.`)
    return {machines: results}
  }
}
