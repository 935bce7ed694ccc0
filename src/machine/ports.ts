import type {ResolvedForward} from '../network/forwards.js'
import type {MachineState} from '../state/machine-state.js'
import type {MachineConfig} from '../vmfile/types.js'
import {runningTarget} from './ssh.js'
import {inspectMachine} from './inspect.js'
import {defaultOf} from '../vmfile/index.js'

export interface PortMapping extends ResolvedForward {
  /** SSH is listed too, as Vagrant does. */
  id: string
}

export interface MachinePorts {
  state: MachineState
  /**
   * Running: the ports QEMU forwards now (SSH first, auto_correct applied). Otherwise the
   * configured forwarded ports (SSH gets a free host port at each boot, so it is not listed).
   */
  ports: PortMapping[]
}

/** The port mappings of a machine: what is forwarded while it runs, what is configured when it does not. */
export async function machinePorts(projectDir: string, config: MachineConfig): Promise<MachinePorts> {
  const {status, record, unreadable} = await inspectMachine(projectDir, config.name)
  if (unreadable !== undefined) throw unreadable
  if (status.state !== 'running') {
    // The record's settings are the ones the next vm up boots with; the Vmfile's before the first.
    const configured = (record?.config ?? config).forwardedPorts
    return {
      state: status.state,
      ports: configured.map((port) => ({
        id: `${port.protocol}/${port.guest}`,
        guest: port.guest,
        host: port.host,
        hostIp: port.hostIp,
        protocol: port.protocol,
      })),
    }
  }
  const target = await runningTarget(projectDir, config.name)
  const ssh: PortMapping = {
    id: 'ssh',
    guest: record?.config.ssh.port ?? (defaultOf('ssh.port') as number),
    host: target.port,
    hostIp: target.host,
    protocol: 'tcp',
  }
  return {
    state: status.state,
    ports: [ssh, ...(record?.forwards ?? []).map((forward) => ({...forward, id: `${forward.protocol}/${forward.guest}`}))],
  }
}
