import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags} from '../../cli/box-flags.js'
import {login, type LoginResult} from '../../box/oci/login.js'
import {UsageError} from '../../errors/errors.js'

async function readStdin(): Promise<string> {
  const parts: Buffer[] = []
  for await (const chunk of process.stdin) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

export default class BoxLogin extends BaseCommand<LoginResult> {
  static override summary = 'Store credentials for a box registry or box server.'
  static override description = `The credentials are checked against the registry (OCI distribution API, basic or bearer-token auth) and stored in <config dir>/credentials.json (mode 0600). They are used for oci:// boxes on HOST and sent as an Authorization header to catalogs and box URLs on HOST. Without a login, vm also reads Docker's ~/.docker/config.json and its credential helpers.`

  static override examples = [
    'echo "$PASSWORD" | <%= config.bin %> box login registry.example.org --username me --password-stdin',
    'echo "$TOKEN" | <%= config.bin %> box login boxes.example.org --token-stdin',
  ]

  static override args = {
    host: Args.string({description: 'HOST or HOST:PORT.', required: true}),
  }

  static override flags = {
    username: Flags.string({char: 'u', summary: 'User name.'}),
    'password-stdin': Flags.boolean({summary: 'Read the password from standard input.'}),
    'token-stdin': Flags.boolean({summary: 'Read a bearer token from standard input instead of a password.'}),
    ...downloadFlags,
  }

  async run(): Promise<LoginResult> {
    const {args, flags} = await this.parse(BoxLogin)
    this.setDebug(flags.debug)
    if (flags['password-stdin'] === flags['token-stdin'])
      throw new UsageError('Give exactly one of --password-stdin and --token-stdin', {
        hint: 'Secrets are read from standard input so that they stay out of the shell history.',
      })
    const secret = await readStdin()
    if (secret === '') throw new UsageError('Standard input was empty', {hint: 'Pipe the password or token into vm box login.'})
    const result = await login({
      host: args.host,
      username: flags.username,
      password: flags['password-stdin'] ? secret : undefined,
      token: flags['token-stdin'] ? secret : undefined,
      insecure: flags.insecure,
      cacertFile: flags.cacert,
    })
    this.say(result.verified ? `Logged in to ${result.host}` : `Stored credentials for ${result.host} (not a registry: not checked)`)
    return result
  }
}
