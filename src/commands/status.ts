import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {showStatus} from '../cli/fast/status.js'
import type {MachineStatus} from '../machine/inspect.js'

export default class Status extends BaseCommand<{machines: MachineStatus[]}> {
  static override summary = "Show the state of the project's machines."
  static override description =
    'State is one of not_created, running, poweroff, saved (suspended by vm suspend; vm resume or vm up continues it), aborted (the machine stopped without a clean shutdown), or unknown (the machine record cannot be read, or its engine cannot be asked, e.g. its libvirt host is unreachable; the reason is printed, and is the problem field of --json; the other machines are shown all the same). ADDRESSES lists the NAT address, then each extra NIC with its bridge or private network, as the guest reported them at boot (? when it had none).'
  static override strict = false
  static override args = {names: Args.string({description: 'Machines to show (default: all).'})}

  // The work is shared with bin/run.js's fast path (src/cli/fast/status.ts).
  async run(): Promise<{machines: MachineStatus[]}> {
    const {argv, flags} = await this.parse(Status)
    return showStatus(this.output, this.cwd(flags), argv as string[])
  }
}
