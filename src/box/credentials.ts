import {mkdir, readFile, stat} from 'node:fs/promises'
import {homedir} from 'node:os'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {runProgram} from '../process/run.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {vmPaths} from '../state/paths.js'

/**
 * Credentials for registries and box servers, by host (`HOST[:PORT]`). vm's own file,
 * `<config dir>/credentials.json` (mode 0600, written by `vm box login`), comes first; then
 * Docker's config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): its `auths`
 * entries and its credential helpers (`credHelpers[host]`, else `credsStore`), run as
 * `docker-credential-<helper> get`.
 */
export interface Credential {
  username?: string | undefined
  password?: string | undefined
  /** A bearer token used as is (identity tokens from `docker login` are not supported). */
  token?: string | undefined
  /** Where the credential came from, for messages. */
  from: string
}

interface CredentialFile {
  version: 1
  hosts: Record<string, {username?: string; password?: string; token?: string}>
}

export const CREDENTIALS_FILE = 'credentials.json'

export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(vmPaths(env).config, CREDENTIALS_FILE)
}

/** The host key for a URL or a bare host: lowercase host plus the port when one is written. */
export function hostKey(urlOrHost: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(urlOrHost)) {
    const url = new URL(urlOrHost.replace(/^oci:/i, 'https:'))
    return url.host.toLowerCase()
  }
  return urlOrHost.toLowerCase().replace(/\/+$/, '')
}

async function readOwnFile(env: NodeJS.ProcessEnv): Promise<CredentialFile> {
  const file = credentialsFile(env)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return {version: 1, hosts: {}}
  }
  try {
    const parsed = JSON.parse(text) as CredentialFile
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.hosts !== 'object' || parsed.hosts === null)
      throw new Error('no hosts')
    return parsed
  } catch {
    throw new UserError(`${file} is not a credentials file vm wrote`, {
      code: 'CREDENTIALS_INVALID',
      hint: `Remove it and log in again with vm box login HOST.`,
    })
  }
}

/** Stores a credential for `host` (0600, atomically); the config directory is created 0700. */
export async function storeCredential(
  host: string,
  credential: {username?: string | undefined; password?: string | undefined; token?: string | undefined},
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = credentialsFile(env)
  const data = await readOwnFile(env)
  data.hosts[hostKey(host)] = Object.fromEntries(Object.entries(credential).filter(([, value]) => value !== undefined))
  await mkdir(path.dirname(file), {recursive: true, mode: 0o700})
  await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`, {mode: 0o600})
  return file
}

/** Forgets the credential for `host`; false when there was none. */
export async function removeCredential(host: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const file = credentialsFile(env)
  const data = await readOwnFile(env)
  const key = hostKey(host)
  if (data.hosts[key] === undefined) return false
  delete data.hosts[key]
  await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`, {mode: 0o600})
  return true
}

interface DockerConfig {
  auths?: Record<string, {auth?: string; username?: string; password?: string; identitytoken?: string}>
  credHelpers?: Record<string, string>
  credsStore?: string
}

function dockerConfigFile(env: NodeJS.ProcessEnv): string {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : path.join(env.HOME ?? homedir(), '.docker')
  return path.join(dir, 'config.json')
}

/** Docker writes auths keys as host, https://host or https://host/v1/. */
function matchesHost(entry: string, key: string): boolean {
  const bare = entry
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase()
  return bare === key
}

async function fromDocker(key: string, env: NodeJS.ProcessEnv): Promise<Credential | undefined> {
  const file = dockerConfigFile(env)
  let config: DockerConfig
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as DockerConfig
  } catch {
    return undefined
  }
  const helper = config.credHelpers?.[key] ?? config.credsStore
  if (typeof helper === 'string' && /^[A-Za-z0-9_.-]+$/.test(helper)) {
    const result = await runProgram(`docker-credential-${helper}`, ['get'], {input: key, env, timeoutMs: 30_000}).catch(() => undefined)
    if (result !== undefined) {
      try {
        const answer = JSON.parse(result.stdout) as {Username?: string; Secret?: string}
        if (typeof answer.Secret === 'string' && answer.Secret !== '') {
          const from = `docker-credential-${helper}`
          // Helpers answer "<token>" as the user name for identity tokens.
          return answer.Username === '<token>' ? {token: answer.Secret, from} : {username: answer.Username, password: answer.Secret, from}
        }
      } catch {
        // A helper that answers something else has nothing for this host.
      }
    }
  }
  for (const [entry, auth] of Object.entries(config.auths ?? {})) {
    if (!matchesHost(entry, key) || typeof auth !== 'object' || auth === null) continue
    if (typeof auth.auth === 'string' && auth.auth !== '') {
      const decoded = Buffer.from(auth.auth, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon > 0) return {username: decoded.slice(0, colon), password: decoded.slice(colon + 1), from: file}
    }
    if (typeof auth.username === 'string' && typeof auth.password === 'string')
      return {username: auth.username, password: auth.password, from: file}
  }
  return undefined
}

/** The credential for a host or URL: vm's own file, then Docker's config and helpers. */
export async function findCredential(urlOrHost: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const key = hostKey(urlOrHost)
  const own = (await readOwnFile(env)).hosts[key]
  if (own !== undefined) {
    const file = credentialsFile(env)
    const mode = (await stat(file)).mode & 0o077
    if (mode !== 0)
      throw new UserError(`${file} holds passwords but others may read it`, {
        code: 'CREDENTIALS_INVALID',
        hint: `Run chmod 600 ${file}.`,
      })
    return {...own, from: file}
  }
  return fromDocker(key, env)
}

/** The Authorization header value a credential gives for plain HTTP(S) servers (catalogs, boxes). */
export function authorizationFor(credential: Credential): string | undefined {
  if (credential.token !== undefined && credential.token !== '') return `Bearer ${credential.token}`
  if (credential.username !== undefined && credential.password !== undefined)
    return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`
  return undefined
}

/**
 * Authorization header values by host for catalogs and box URLs: vm's stored credentials,
 * Docker's `auths` entries (helpers are only asked for oci:// hosts), and VAGRANT_CLOUD_TOKEN
 * for the host of VAGRANT_SERVER_URL (sent nowhere else).
 */
export async function loadAuthorizations(env: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const result: Record<string, string> = {}
  const token = env.VAGRANT_CLOUD_TOKEN
  if (token !== undefined && token !== '' && env.VAGRANT_SERVER_URL !== undefined && URL.canParse(env.VAGRANT_SERVER_URL))
    result[new URL(env.VAGRANT_SERVER_URL).host.toLowerCase()] = `Bearer ${token}`
  try {
    const config = JSON.parse(await readFile(dockerConfigFile(env), 'utf8')) as DockerConfig
    for (const [entry, auth] of Object.entries(config.auths ?? {})) {
      const key = entry
        .replace(/^[a-z]+:\/\//i, '')
        .replace(/\/.*$/, '')
        .toLowerCase()
      if (typeof auth?.auth === 'string' && auth.auth !== '') result[key] = `Basic ${auth.auth}`
    }
  } catch {
    // No Docker config: nothing from there.
  }
  const file = credentialsFile(env)
  const own = (await readOwnFile(env)).hosts
  if (Object.keys(own).length > 0 && ((await stat(file)).mode & 0o077) !== 0)
    throw new UserError(`${file} holds passwords but others may read it`, {code: 'CREDENTIALS_INVALID', hint: `Run chmod 600 ${file}.`})
  for (const [host, credential] of Object.entries(own)) {
    const value = authorizationFor({...credential, from: file})
    if (value !== undefined) result[host] = value
  }
  return result
}
