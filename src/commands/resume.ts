import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {pickMachine} from '../machine/fan-out.js'
import {resumeMachine, type ResumeResult} from '../machine/suspend.js'

export default class Resume extends BaseCommand<ResumeResult> {
  static override summary = 'Continue a suspended machine where it was; its clock is set from the host and its folders mounted again.'
  static override examples = ['<%= config.bin %> resume', '<%= config.bin %> resume web']
  static override args = {machine: Args.string({description: 'Machine (default: the primary one).'})}

  async run(): Promise<ResumeResult> {
    const {args, flags} = await this.parse(Resume)
    const {project, name} = pickMachine(this.cwd(flags), args.machine)
    const config = project.machines.find((candidate) => candidate.name === name)!
    const result = await resumeMachine(project.dir, config, this.machineEvents(name))
    if (result.up === undefined) this.say(`[${name}] already running`)
    else this.say(`[${name}] `, this.out.green('running'), `: resumed, SSH on ${result.up.ssh?.host}:${result.up.ssh?.port}`)
    return result
  }
}
