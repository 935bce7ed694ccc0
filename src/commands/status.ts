import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {renderTable} from '../cli/table.js'
import type {MachineStatus} from '../machine/inspect.js'
import {statusProject} from '../machine/fan-out.js'

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

export default class Status extends BaseCommand<{machines: MachineStatus[]}> {
  static override summary = "Show the state of the project's machines."
  static override description =
    'State is one of not_created, running, poweroff, saved (suspended by vm suspend; vm resume or vm up continues it), aborted (the machine stopped without a clean shutdown), or unknown (the machine record cannot be read, or its engine cannot be asked, e.g. its libvirt host is unreachable; the reason is printed, and is the problem field of --json; the other machines are shown all the same). ADDRESSES lists the NAT address, then each extra NIC with its bridge or private network, as the guest reported them at boot (? when it had none).'
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to show (default: all).'})}

  async run(): Promise<{machines: MachineStatus[]}> {
    const {argv, flags} = await this.parse(Status)
    const {machines} = await statusProject(this.cwd(flags), argv as string[])
    const rows = machines.map((m) => [
      m.name,
      m.state,
      m.ssh === undefined ? '-' : `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}`,
      m.box === undefined ? '-' : `${m.box.name} ${m.box.version}`,
      m.accel ?? '-',
      m.vnc ?? '-',
      addresses(m),
    ])
    this.sayLines(renderTable(['NAME', 'STATE', 'SSH', 'BOX', 'ACCEL', 'VNC', 'ADDRESSES'], rows))
    for (const m of machines) if (m.problem !== undefined) this.warn(`[${m.name}] ${m.problem}`)
    return {machines}
  }
}
