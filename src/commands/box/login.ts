import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {downloadFlags} from '../../cli/box-flags.js'
import {login, type LoginResult} from '../../box/oci/login.js'
import {UsageError, UserError} from '../../errors/errors.js'

async function readStdin(): Promise<string> {
  const parts: Buffer[] = []
  for await (const chunk of process.stdin) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

/**
 * Asks on the terminal (question on stderr, answer from the TTY in raw mode): typed characters
 * are echoed unless `hidden`; Backspace erases, Enter ends, Ctrl-C and Ctrl-D give up.
 */
async function ask(question: string, hidden: boolean): Promise<string> {
  const input = process.stdin
  // Raw (no echo) before the question shows: an answer typed as soon as it appears is never echoed.
  input.setRawMode(true)
  process.stderr.write(question)
  input.resume()
  return new Promise((resolve, reject) => {
    let value = ''
    const finish = (error?: Error) => {
      input.off('data', onData)
      input.setRawMode(false)
      input.pause()
      process.stderr.write('\n')
      if (error === undefined) resolve(value)
      else reject(error)
    }
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish()
        if (char === '\u0003' || char === '\u0004')
          return finish(new UserError('vm box login was interrupted: nothing was stored', {code: 'INTERRUPTED', exit: 'interrupted'}))
        if (char === '\u007f' || char === '\b') {
          if (value !== '') {
            value = [...value].slice(0, -1).join('')
            if (!hidden) process.stderr.write('\b \b')
          }
        } else if (char >= ' ') {
          value += char
          if (!hidden) process.stderr.write(char)
        }
      }
      return undefined
    }
    input.on('data', onData)
  })
}

export default class BoxLogin extends BaseCommand<LoginResult> {
  static override summary = 'Store credentials for a box registry or box server.'
  static override description = `The credentials are checked against the registry (OCI distribution API, basic or bearer-token auth) and stored in <config dir>/credentials.json (mode 0600). They are used for oci:// boxes on HOST and sent as an Authorization header to catalogs and box URLs on HOST. Without a login, vm also reads Docker's ~/.docker/config.json and its credential helpers.`

  static override examples = [
    '<%= config.bin %> box login registry.example.org --username me',
    'echo "$PASSWORD" | <%= config.bin %> box login registry.example.org --username me --password-stdin',
    'echo "$TOKEN" | <%= config.bin %> box login boxes.example.org --token-stdin',
  ]

  static override args = {
    host: Args.string({description: 'HOST or HOST:PORT.', required: true}),
  }

  static override flags = {
    username: Flags.string({char: 'u', summary: 'User name.'}),
    'password-stdin': Flags.boolean({summary: 'Read the password from standard input (without it, in a terminal, vm asks).'}),
    'token-stdin': Flags.boolean({summary: 'Read a bearer token from standard input instead of a password.'}),
    ...downloadFlags,
  }

  async run(): Promise<LoginResult> {
    const {args, flags} = await this.parse(BoxLogin)
    this.setDebug(flags.debug)
    if (flags['password-stdin'] && flags['token-stdin'])
      throw new UsageError('Give only one of --password-stdin and --token-stdin', {
        hint: 'Secrets are read from standard input so that they stay out of the shell history.',
      })
    // Neither flag: asked on the terminal (the password is not echoed); without one, an error.
    const interactive = !flags['password-stdin'] && !flags['token-stdin']
    if (interactive && process.stdin.isTTY !== true)
      throw new UsageError('Give --password-stdin or --token-stdin, or run vm box login in a terminal to be asked', {
        hint: `echo "$PASSWORD" | vm box login ${args.host} --username USER --password-stdin (secrets stay out of the shell history).`,
      })
    let username = flags.username
    let secret: string
    if (interactive) {
      if (username === undefined) username = (await ask('Username: ', false)).trim()
      if (username === '') throw new UsageError('No user name was given', {hint: 'Type the user name, or pass --username USER.'})
      secret = await ask(`Password for ${username}@${args.host}: `, true)
      if (secret === '') throw new UsageError('No password was typed', {hint: 'Run vm box login again and type the password.'})
    } else {
      secret = await readStdin()
      if (secret === '') throw new UsageError('Standard input was empty', {hint: 'Pipe the password or token into vm box login.'})
    }
    const result = await login({
      host: args.host,
      username,
      password: flags['token-stdin'] ? undefined : secret,
      token: flags['token-stdin'] ? secret : undefined,
      insecure: flags.insecure,
      cacertFile: flags.cacert,
    })
    this.say(result.verified ? `Logged in to ${result.host}` : `Stored credentials for ${result.host} (not a registry: not checked)`)
    return result
  }
}
