import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {UserError} from '../errors/errors.js'
import {machinePorts, type PortMapping} from '../machine/ports.js'
import {pickMachine} from '../machine/fan-out.js'
import type {MachineState} from '../state/machine-state.js'

interface PortResult {
  machine: string
  state: MachineState
  ports: PortMapping[]
}

export default class Port extends BaseCommand<PortResult> {
  static override summary = 'List the ports forwarded from the host to a machine.'
  static override description =
    'While the machine runs: SSH and every forwarded port, with the host port actually used (auto_correct applied). When it does not run: its state and the configured forwarded ports.'

  static override examples = ['<%= config.bin %> port', '<%= config.bin %> port web --guest 80']
  static override args = {name: Args.string({description: 'Machine, or an id from global-status (default: the primary one).'})}
  static override flags = {
    guest: Flags.integer({summary: 'Print only the host port forwarded to this guest port.'}),
  }

  async run(): Promise<PortResult> {
    const {args, flags} = await this.parse(Port)
    const {project, name} = pickMachine(this.cwd(flags), args.name)
    const config = project.machines.find((machine) => machine.name === name)!
    const {state, ports} = await machinePorts(project.dir, config)
    const running = state === 'running'
    if (flags.guest !== undefined) {
      const match = ports.find((port) => port.guest === flags.guest)
      if (match === undefined)
        throw new UserError(`No host port is forwarded to guest port ${flags.guest} of machine ${name}`, {
          hint: 'Run "vm port" to list the mappings.',
        })
      this.say(String(match.host))
      if (!running) this.warn(`machine ${name} is ${state}: ${match.host} is the configured host port, not forwarded now`)
      return {machine: name, state, ports: [match]}
    }
    if (!running) {
      this.say(
        `Machine ${name} is ${state}; ${ports.length === 0 ? 'no forwarded ports are configured' : 'configured forwarded ports'} (SSH gets a host port at boot):`,
      )
    }
    for (const port of ports) {
      const corrected = port.requested === undefined ? '' : ` (auto_correct: ${port.requested} was taken)`
      this.say(`${String(port.guest).padStart(5)} (guest) => ${port.hostIp}:${port.host} (host) ${port.protocol}${corrected}`)
    }
    return {machine: name, state, ports}
  }
}
