import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {rsyncProject} from '../machine/sync.js'

export default class Rsync extends BaseCommand<{machines: Array<{name: string; folders: string[]}>}> {
  static override summary = 'Copy rsync synced folders from the host into running machines again.'
  static override strict = false
  static override args = {names: Args.string({description: 'Machines (default: all).'})}

  async run(): Promise<{machines: Array<{name: string; folders: string[]}>}> {
    const {argv, flags} = await this.parse(Rsync)
    const machines = await rsyncProject(this.cwd(flags), argv as string[])
    for (const machine of machines) {
      this.say(
        machine.folders.length === 0 ? `[${machine.name}] no rsync folders` : `[${machine.name}] synced ${machine.folders.join(', ')}`,
      )
    }
    return {machines}
  }
}
