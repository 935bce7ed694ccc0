import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {UserError} from '../errors/errors.js'
import {machinePorts, type PortMapping} from '../machine/ports.js'
import {pickMachine} from '../machine/fan-out.js'

export default class Port extends BaseCommand<{machine: string; ports: PortMapping[]}> {
  static override summary = 'List the ports forwarded from the host to a machine.'
  static override examples = ['<%= config.bin %> port', '<%= config.bin %> port web --guest 80']
  static override args = {name: Args.string({description: 'Machine (default: the primary one).'})}
  static override flags = {
    guest: Flags.integer({summary: 'Print only the host port forwarded to this guest port.'}),
  }

  async run(): Promise<{machine: string; ports: PortMapping[]}> {
    const {args, flags} = await this.parse(Port)
    const {project, name} = pickMachine(this.cwd(flags), args.name)
    const ports = await machinePorts(project.dir, name)
    if (flags.guest !== undefined) {
      const match = ports.find((port) => port.guest === flags.guest)
      if (match === undefined)
        throw new UserError(`No host port is forwarded to guest port ${flags.guest} of machine ${name}`, {
          hint: 'Run "vm port" to list the mappings.',
        })
      this.say(String(match.host))
      return {machine: name, ports: [match]}
    }
    for (const port of ports) {
      const corrected = port.requested === undefined ? '' : ` (auto_correct: ${port.requested} was taken)`
      this.say(`${String(port.guest).padStart(5)} (guest) => ${port.hostIp}:${port.host} (host) ${port.protocol}${corrected}`)
    }
    return {machine: name, ports}
  }
}
