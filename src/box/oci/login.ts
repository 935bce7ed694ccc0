import {UsageError, UserError} from '../../errors/errors.js'
import {removeCredential, storeCredential, type Credential} from '../credentials.js'
import {readCaFile, RegistryClient} from './client.js'

export interface LoginOptions {
  host: string
  username?: string | undefined
  password?: string | undefined
  token?: string | undefined
  insecure?: boolean | undefined
  /** A CA bundle (PEM file) to trust. */
  cacertFile?: string | undefined
  env?: NodeJS.ProcessEnv | undefined
}

export interface LoginResult {
  host: string
  file: string
  /** False when the host is not an OCI registry (a static box server): stored unchecked. */
  verified: boolean
}

/** A host as `vm box login` takes it: HOST[:PORT], also accepted with oci:// or https://. */
export function loginHost(text: string): string {
  const bare = text
    .trim()
    .replace(/^(oci|https?):\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase()
  if (!/^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$/.test(bare))
    throw new UsageError(`"${text}" is not a host name`, {hint: 'Write HOST or HOST:PORT, e.g. registry.example.org or 127.0.0.1:5000.'})
  return bare
}

/**
 * Checks the credential against the host's registry API (GET /v2/ with its challenge) and
 * stores it. A host without the registry API (a static catalog server) is stored unchecked.
 */
export async function login(options: LoginOptions): Promise<LoginResult> {
  const env = options.env ?? process.env
  const host = loginHost(options.host)
  if (options.token === undefined && (options.username === undefined || options.password === undefined))
    throw new UsageError('vm box login needs a user name and a password, or a token', {
      hint: `echo "$PASSWORD" | vm box login ${host} --username USER --password-stdin, or --token-stdin for a bearer token.`,
    })
  const credential: Credential = {username: options.username, password: options.password, token: options.token, from: 'the login'}
  const client = new RegistryClient(
    {host, repository: 'vmfile-login-check'},
    {
      actions: 'pull',
      insecure: options.insecure,
      cacert: await readCaFile(options.cacertFile),
      credential,
    },
  )
  let verified = true
  try {
    await client.connect()
  } catch (error) {
    if (!(error instanceof UserError) || error.code !== 'BOX_NOT_FOUND') throw error
    verified = false
  } finally {
    client.close()
  }
  const file = await storeCredential(host, {username: options.username, password: options.password, token: options.token}, env)
  return {host, file, verified}
}

export async function logout(hostText: string, env: NodeJS.ProcessEnv = process.env): Promise<{host: string; removed: boolean}> {
  const host = loginHost(hostText)
  return {host, removed: await removeCredential(host, env)}
}
