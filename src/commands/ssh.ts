import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {pickMachine} from '../machine/fan-out.js'
import {sshIntoMachine} from '../machine/ssh.js'

export default class Ssh extends BaseCommand<{machine: string; exitCode: number}> {
  static override summary = 'Open a shell in a machine, or run a command there with -c.'
  static override description =
    'Runs OpenSSH with the machine\'s own key and pinned host key. With -c, the command runs and vm exits with its status. Arguments after "--" go to ssh. Without a name, the primary machine.'

  static override examples = [
    '<%= config.bin %> ssh',
    '<%= config.bin %> ssh web -c "uname -a"',
    '<%= config.bin %> ssh -- -L 8080:localhost:80',
  ]
  static override strict = false
  static override args = {name: Args.string({description: 'Machine (default: the primary one).'})}
  static override flags = {
    command: Flags.string({char: 'c', summary: 'Command to run instead of a shell.'}),
  }

  async run(): Promise<{machine: string; exitCode: number}> {
    const {args, argv, flags} = await this.parse(Ssh)
    const rest = (argv as string[]).slice(args.name === undefined ? 0 : 1)
    const {project, name} = pickMachine(this.cwd(flags), args.name)
    const exitCode = await sshIntoMachine(project.dir, name, flags.command, rest, Boolean(process.stdin.isTTY))
    process.exitCode = exitCode
    return {machine: name, exitCode}
  }
}
