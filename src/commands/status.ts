import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import type {MachineStatus} from '../machine/inspect.js'
import {statusProject} from '../machine/project.js'

export default class Status extends BaseCommand<{machines: MachineStatus[]}> {
  static override summary = "Show the state of the project's machines."
  static override description = 'State is one of not_created, running, poweroff, or aborted (QEMU died without a clean shutdown).'
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
    ])
    const header = ['NAME', 'STATE', 'SSH', 'BOX', 'ACCEL', 'VNC']
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
    const line = (cells: string[]): string =>
      cells
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd()
    this.say(line(header))
    for (const row of rows) this.say(line(row))
    return {machines}
  }
}
