import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {logout} from '../../box/oci/login.js'

export default class BoxLogout extends BaseCommand<{host: string; removed: boolean}> {
  static override summary = 'Forget the credentials stored for a host by vm box login.'
  static override examples = ['<%= config.bin %> box logout registry.example.org']

  static override args = {
    host: Args.string({description: 'HOST or HOST:PORT.', required: true}),
  }

  async run(): Promise<{host: string; removed: boolean}> {
    const {args, flags} = await this.parse(BoxLogout)
    this.setDebug(flags.debug)
    const result = await logout(args.host)
    this.say(result.removed ? `Removed the credentials for ${result.host}` : `No credentials were stored for ${result.host}`)
    return result
  }
}
