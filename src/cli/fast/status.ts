import {renderTable} from '../table.js'
import type {CommandOutput} from '../command-output.js'
import type {MachineStatus} from '../../machine/inspect.js'
import {statusProject} from '../../machine/fan-out.js'
import type {FastRequest} from './args.js'
import {runFastCommand} from './run.js'

/** "10.0.2.15 10.77.0.57(br0) 192.168.56.10(backend)": the NAT address, then each extra NIC's. */
function addresses(machine: MachineStatus): string {
  if (machine.networks === undefined) return '-'
  return machine.networks
    .map((nic) => {
      const address = nic.address === undefined ? '?' : nic.address.replace(/\/\d+$/, '')
      return nic.type === 'nat' ? address : `${address}(${nic.network})`
    })
    .join(' ')
}

/** `vm status [NAMES...]` once its arguments are parsed (src/commands/status.ts and the fast path). */
export async function showStatus(output: CommandOutput, cwd: string, names: string[]): Promise<{machines: MachineStatus[]}> {
  const {machines} = await statusProject(cwd, names)
  const rows = machines.map((m) => [
    m.name,
    m.state,
    m.ssh === undefined ? '-' : `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}`,
    m.box === undefined ? '-' : `${m.box.name} ${m.box.version}`,
    m.accel ?? '-',
    m.vnc ?? '-',
    addresses(m),
  ])
  output.sayLines(renderTable(['NAME', 'STATE', 'SSH', 'BOX', 'ACCEL', 'VNC', 'ADDRESSES'], rows))
  for (const m of machines) if (m.problem !== undefined) output.warn(`[${m.name}] ${m.problem}`)
  return {machines}
}

/** The fast path's entry (dist/fast-status.cjs). */
export function runFast(request: FastRequest): Promise<number> {
  return runFastCommand(request, (output, cwd) => showStatus(output, cwd, request.args))
}
