import {readFile} from 'node:fs/promises'
import http, {type IncomingHttpHeaders, type IncomingMessage} from 'node:http'
import https from 'node:https'
import tls from 'node:tls'

import {UserError} from '../../errors/errors.js'
import type {Credential} from '../credentials.js'
import {BlobSockets, type BlobHead, type BlobSink} from './blob-socket.js'
import {isLoopbackHost, type OciReference} from './reference.js'

/**
 * A client for one repository of an OCI distribution registry. It picks the scheme (https;
 * plain http only for loopback hosts or with `insecure`), answers the registry's auth
 * challenge (Basic, or the Bearer token flow: a token from the realm for the repository's
 * scope, fetched with the stored credential when there is one) and counts the bytes it sends
 * and receives. Bodies are Buffers so that a request can be sent again after a challenge.
 */
export interface ClientOptions {
  insecure?: boolean | undefined
  /** Extra CA certificates (PEM) to trust. */
  cacert?: string | undefined
  credential?: Credential | undefined
  /** `pull` or `pull,push`: the scope asked for in the Bearer flow. */
  actions: 'pull' | 'pull,push'
  signal?: AbortSignal | undefined
}

export interface RegistryResponse {
  status: number
  headers: IncomingHttpHeaders
  body: IncomingMessage
}

interface RequestInit {
  headers?: Record<string, string> | undefined
  body?: Buffer | undefined
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
])

/** The PEM text of a CA bundle given by path (--cacert). */
export async function readCaFile(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new UserError(`Cannot read the CA bundle ${file}: ${(error as Error).message}`, {
      code: 'USAGE',
      hint: 'Give the path of a PEM file.',
    })
  }
}

/** A network failure worth retrying (the connection dropped, was refused for a moment ...). */
export function isTransient(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNABORTED' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'UND_ERR_SOCKET' ||
    (error as {transient?: boolean}).transient === true
  )
}

/** Reads a small body (JSON documents, errors) up to `limit` bytes. */
export async function readSmallBody(response: RegistryResponse, limit = 4 << 20, count?: (bytes: number) => void): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of response.body) {
    size += (chunk as Buffer).length
    count?.((chunk as Buffer).length)
    if (size > limit) {
      response.body.destroy()
      throw new UserError(`The registry sent more than ${limit} bytes where a small document was expected`, {code: 'REGISTRY_INVALID'})
    }
    parts.push(chunk as Buffer)
  }
  return Buffer.concat(parts)
}

function parseChallenge(header: string | undefined): {scheme: string; params: Record<string, string>} | undefined {
  if (header === undefined) return undefined
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header)
  if (match === null) return undefined
  const params: Record<string, string> = {}
  for (const part of match[2]!.matchAll(/(\w+)="([^"]*)"/g)) params[part[1]!.toLowerCase()] = part[2]!
  return {scheme: match[1]!.toLowerCase(), params}
}

export class RegistryClient {
  /** Request body bytes handed to the network (retries included). */
  sent = 0
  /** Response body bytes read from the network. */
  received = 0
  private origin: string | undefined
  private authorization: string | undefined
  private readonly agents: {http: http.Agent; https: https.Agent}
  private plain: BlobSockets | undefined
  private plainOff = false

  constructor(
    readonly ref: Pick<OciReference, 'host' | 'repository'>,
    private readonly options: ClientOptions,
  ) {
    this.agents = {
      http: new http.Agent({keepAlive: true, maxSockets: 8}),
      https: new https.Agent({
        keepAlive: true,
        maxSockets: 8,
        rejectUnauthorized: options.insecure !== true,
        ...(options.cacert === undefined ? {} : {ca: [...tls.rootCertificates, options.cacert]}),
      }),
    }
  }

  close(): void {
    this.agents.http.destroy()
    this.agents.https.destroy()
    this.plain?.close()
  }

  /**
   * A GET on the plain-http fast path for blobs (blob-socket.ts): the head once the whole body
   * went into the sink's buffer, or undefined when `send` must serve the request instead: a TLS registry,
   * or an answer that is not a plain 200/206 (after one that is not an auth challenge, such as
   * a redirect to storage, every later request goes to `send` as well).
   */
  async getPlain(target: string, headers: Record<string, string>, sink: BlobSink): Promise<BlobHead | undefined> {
    if (this.origin === undefined) await this.connect()
    if (this.plainOff || !this.origin!.startsWith('http:')) return undefined
    this.plain ??= new BlobSockets(new URL(this.origin!), this.options.signal)
    const all: Record<string, string> = {'user-agent': 'vmfile', ...headers}
    if (this.authorization !== undefined) all.authorization = this.authorization
    const result = await this.plain.get(target, all, sink)
    if (typeof result !== 'number') return result
    if (result !== 401) this.plainOff = true
    return undefined
  }

  /** `/v2/<repository>/<rest>` on this registry. */
  repoPath(rest: string): string {
    return `/v2/${this.ref.repository}/${rest}`
  }

  private raw(url: URL, method: string, init: RequestInit): Promise<RegistryResponse> {
    const secure = url.protocol === 'https:'
    const headers: Record<string, string> = {'user-agent': 'vmfile', ...init.headers}
    if (this.authorization !== undefined && url.host.toLowerCase() === this.ref.host) headers.authorization = this.authorization
    if (init.body !== undefined) headers['content-length'] = String(init.body.length)
    return new Promise((resolve, reject) => {
      const request = (secure ? https : http).request(
        url,
        {method, headers, agent: secure ? this.agents.https : this.agents.http, signal: this.options.signal},
        (response) => resolve({status: response.statusCode ?? 0, headers: response.headers, body: response}),
      )
      request.on('error', reject)
      if (init.body !== undefined) this.sent += init.body.length
      request.end(init.body)
    })
  }

  /**
   * Finds the scheme and authenticates once (GET /v2/). A loopback registry is asked over
   * plain http first (sparing a TLS handshake that fails against the plain registries such
   * hosts usually run); a TLS one answers that request with a 400 or a dropped connection,
   * and https is tried next. Any other answer (200, an auth refusal ...) is the registry's.
   */
  async connect(): Promise<void> {
    if (this.origin !== undefined) return
    const loopback = isLoopbackHost(this.ref.host)
    let plainError: unknown
    if (loopback) {
      this.origin = `http://${this.ref.host}`
      try {
        await this.ping()
        return
      } catch (error) {
        this.origin = undefined
        const status = ((error as UserError).data as {status?: number} | undefined)?.status
        if (error instanceof UserError && status !== 400) throw error
        plainError = error
      }
    }
    try {
      this.origin = `https://${this.ref.host}`
      await this.ping()
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const wrongProtocol = code === 'EPROTO' || /wrong version number|packet length too long/i.test((error as Error).message)
      this.origin = undefined
      // Neither spoke: what plain http met says more than the failed TLS handshake.
      if (wrongProtocol && plainError !== undefined) throw this.networkError(plainError)
      if (!wrongProtocol || this.options.insecure !== true) throw this.networkError(error)
      this.origin = `http://${this.ref.host}`
      try {
        await this.ping()
      } catch (again) {
        this.origin = undefined
        throw this.networkError(again)
      }
    }
  }

  private async ping(): Promise<void> {
    const response = await this.send('GET', '/v2/')
    await readSmallBody(response).catch(() => undefined)
    if (response.status !== 200) throw this.statusError('GET /v2/', response.status)
  }

  /** A request relative to the registry (or an absolute Location it gave), answering auth challenges. */
  async send(method: string, target: string, init: RequestInit = {}): Promise<RegistryResponse> {
    if (this.origin === undefined && target !== '/v2/') await this.connect()
    let url = new URL(target, this.origin)
    let challenged = false
    for (let redirects = 0; ;) {
      let response: RegistryResponse
      try {
        response = await this.raw(url, method, init)
      } catch (error) {
        if (TLS_CODES.has((error as NodeJS.ErrnoException).code ?? '')) throw this.networkError(error)
        throw error
      }
      if (response.status === 401 && !challenged) {
        challenged = true
        const challenge = parseChallenge(response.headers['www-authenticate'] as string | undefined)
        await readSmallBody(response).catch(() => undefined)
        await this.authenticate(challenge)
        continue
      }
      if ([301, 302, 303, 307, 308].includes(response.status) && (method === 'GET' || method === 'HEAD') && redirects < 5) {
        const location = response.headers.location
        response.body.resume()
        if (location === undefined) return response
        url = new URL(location, url)
        redirects++
        continue
      }
      if (response.status === 401) {
        await readSmallBody(response).catch(() => undefined)
        throw this.authError(true)
      }
      return response
    }
  }

  private async authenticate(challenge: ReturnType<typeof parseChallenge>): Promise<void> {
    const credential = this.options.credential
    if (challenge?.scheme === 'basic') {
      if (credential?.username === undefined || credential.password === undefined) throw this.authError(false)
      this.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`
      return
    }
    if (challenge?.scheme !== 'bearer' || challenge.params.realm === undefined) throw this.authError(credential !== undefined)
    if (credential?.token !== undefined) {
      this.authorization = `Bearer ${credential.token}`
      return
    }
    const realm = new URL(challenge.params.realm)
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && (isLoopbackHost(realm.host) || this.options.insecure === true)))
      throw new UserError(`The registry ${this.ref.host} sends credentials to ${realm.href}, which is not https`, {code: 'REGISTRY_AUTH'})
    if (challenge.params.service !== undefined) realm.searchParams.set('service', challenge.params.service)
    realm.searchParams.set('scope', challenge.params.scope ?? `repository:${this.ref.repository}:${this.options.actions}`)
    const headers: Record<string, string> = {'user-agent': 'vmfile'}
    if (credential?.username !== undefined && credential.password !== undefined)
      headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`
    const secure = realm.protocol === 'https:'
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = (secure ? https : http).request(
        realm,
        {headers, agent: secure ? this.agents.https : this.agents.http, signal: this.options.signal},
        resolve,
      )
      request.on('error', reject)
      request.end()
    })
    const body = await readSmallBody({status: response.statusCode ?? 0, headers: response.headers, body: response})
    if (response.statusCode !== 200) throw this.authError(credential !== undefined)
    let token: unknown
    try {
      const parsed = JSON.parse(body.toString('utf8')) as {token?: unknown; access_token?: unknown}
      token = parsed.token ?? parsed.access_token
    } catch {
      token = undefined
    }
    if (typeof token !== 'string' || token === '')
      throw new UserError(`The token service ${realm.origin} of ${this.ref.host} answered no token`, {code: 'REGISTRY_AUTH'})
    this.authorization = `Bearer ${token}`
  }

  authError(hadCredential: boolean): UserError {
    return new UserError(
      hadCredential
        ? `The registry ${this.ref.host} refused the credentials from ${this.options.credential?.from ?? 'the login'}`
        : `The registry ${this.ref.host} wants credentials`,
      {
        code: 'REGISTRY_AUTH',
        hint: `Log in with: vm box login ${this.ref.host} --username USER --password-stdin (or docker login ${this.ref.host}).`,
      },
    )
  }

  statusError(what: string, status: number, text = ''): UserError {
    let detail = ''
    try {
      const parsed = JSON.parse(text) as {errors?: Array<{code?: string; message?: string}>}
      detail = (parsed.errors ?? []).map((entry) => `${entry.code ?? ''} ${entry.message ?? ''}`.trim()).join('; ')
    } catch {
      detail = ''
    }
    return new UserError(`The registry ${this.ref.host} answered ${status} to ${what}${detail === '' ? '' : `: ${detail}`}`, {
      code: status === 404 ? 'BOX_NOT_FOUND' : status === 403 ? 'REGISTRY_AUTH' : 'REGISTRY_FAILED',
      hint:
        status === 404
          ? 'Check the repository and the tag (vm box outdated lists what the repository offers).'
          : status === 403
            ? `Your account may not ${this.options.actions === 'pull' ? 'read' : 'write'} ${this.ref.repository}; check its permissions.`
            : 'Try again later; if it persists, the registry log should say why.',
      data: {host: this.ref.host, status},
    })
  }

  networkError(error: unknown): UserError {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (error instanceof UserError) return error
    if (TLS_CODES.has(code))
      return new UserError(`Cannot verify the TLS certificate of ${this.ref.host}: ${(error as Error).message}`, {
        code: 'DOWNLOAD_TLS',
        hint: 'Pass --cacert FILE with the CA that signed it (or set NODE_EXTRA_CA_CERTS), or --insecure to skip verification.',
        cause: error,
      })
    if (code === 'EPROTO')
      return new UserError(`${this.ref.host} does not speak https`, {
        code: 'REGISTRY_INSECURE',
        hint: 'Plain http is used only for 127.0.0.1/localhost; pass --insecure to allow it for this host.',
        cause: error,
      })
    return new UserError(`Cannot reach the registry ${this.ref.host}: ${(error as Error).message}`, {
      code: 'REGISTRY_UNREACHABLE',
      hint: 'Check the host and port, and that the registry is running.',
      cause: error,
    })
  }
}
