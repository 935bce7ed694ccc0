import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {pickMachine} from '../machine/fan-out.js'
import {machineSshConfig} from '../machine/ssh.js'
import {checkHostAlias} from '../ssh/options.js'

export default class SshConfig extends BaseCommand<{machine: string; config: string}> {
  static override summary = 'Print an OpenSSH Host block for a machine (for ssh -F and editors).'
  static override examples = ['<%= config.bin %> ssh-config >> ~/.ssh/config', '<%= config.bin %> ssh-config web --host myproject-web']
  static override args = {name: Args.string({description: 'Machine (default: the primary one).'})}
  static override flags = {
    host: Flags.string({summary: 'Host alias to use (default: the machine name).'}),
  }

  async run(): Promise<{machine: string; config: string}> {
    const {args, flags} = await this.parse(SshConfig)
    if (flags.host !== undefined) checkHostAlias(flags.host)
    const {project, name} = pickMachine(this.cwd(flags), args.name)
    const config = await machineSshConfig(project.dir, name, flags.host)
    if (!this.jsonEnabled()) process.stdout.write(config)
    return {machine: name, config}
  }
}
