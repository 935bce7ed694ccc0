import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {failuresError, reloadProject} from '../machine/fan-out.js'
import {InterruptHandler} from '../process/interrupt.js'
import type {UpResult} from '../machine/up.js'

export default class Reload extends BaseCommand<{machines: UpResult[]}> {
  static override summary = 'Halt and boot machines again, applying changes made to the Vmfile.'
  static override examples = ['<%= config.bin %> reload', '<%= config.bin %> reload web']
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to reload (default: all).'})}
  static override flags = {
    force: Flags.boolean({char: 'f', summary: 'Do not wait for the guest to power off.'}),
    parallel: Flags.boolean({summary: 'Reload several machines at once.', default: true, allowNo: true}),
    provision: Flags.boolean({summary: 'Run the provisioners after the boot.', allowNo: true}),
  }

  async run(): Promise<{machines: UpResult[]}> {
    const {argv, flags} = await this.parse(Reload)
    const interrupt = new InterruptHandler()
    const {results, failures} = await reloadProject(
      this.cwd(flags),
      argv as string[],
      flags.parallel,
      flags.force ? 0 : 60_000,
      (name) => this.machineEvents(name),
      {provision: flags.provision, interrupt},
    ).finally(() => interrupt.dispose())
    for (const result of results)
      this.say(`[${result.name}] `, this.out.green('running'), `: SSH on ${result.ssh?.host}:${result.ssh?.port}`)
    const error = failuresError('vm reload', failures)
    if (error !== undefined) throw error
    return {machines: results}
  }
}
