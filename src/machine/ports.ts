import type {ResolvedForward} from '../network/forwards.js'
import {runningTarget} from './ssh.js'
import {inspectMachine} from './inspect.js'
import {defaultOf} from '../vmfile/index.js'

export interface PortMapping extends ResolvedForward {
  /** SSH is listed too, as Vagrant does. */
  id: string
}

/** The port mappings of a running machine: SSH plus the Vmfile's forwarded ports. */
export async function machinePorts(projectDir: string, name: string): Promise<PortMapping[]> {
  const target = await runningTarget(projectDir, name)
  const {record} = await inspectMachine(projectDir, name)
  const ssh: PortMapping = {
    id: 'ssh',
    guest: record?.config.ssh.port ?? (defaultOf('ssh.port') as number),
    host: target.port,
    hostIp: target.host,
    protocol: 'tcp',
  }
  return [ssh, ...(record?.forwards ?? []).map((forward) => ({...forward, id: `${forward.protocol}/${forward.guest}`}))]
}
