import {setTimeout as sleep} from 'node:timers/promises'

import {UserError} from '../../errors/errors.js'
import {isTransient, readSmallBody, type RegistryClient} from './client.js'

/**
 * Blob uploads by the distribution spec: HEAD first (a blob the registry has is never sent
 * again), then POST for an upload session, PATCH pieces with Content-Range, PUT ?digest= to
 * close it. After a dropped connection the session's status (GET on its last Location) says
 * how many bytes arrived and the upload continues from there; a registry that cannot tell
 * (distribution 2.8 invalidates a session whose PATCH was cut) gets the blob again from a new
 * session. Blobs are single chunks (at most 4 MiB), so that costs little.
 */
export const UPLOAD_PIECE = 1024 * 1024

export interface UploadOptions {
  retries?: number | undefined
  retryDelayMs?: number | undefined
  pieceBytes?: number | undefined
  signal?: AbortSignal | undefined
}

/** True when the registry already has the blob. */
export async function hasBlob(client: RegistryClient, digest: string): Promise<boolean> {
  const response = await client.send('HEAD', client.repoPath(`blobs/${digest}`))
  response.body.resume()
  if (response.status === 200) return true
  if (response.status === 404) return false
  throw client.statusError(`HEAD blob ${digest}`, response.status)
}

function transientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500
}

async function startSession(client: RegistryClient): Promise<string> {
  const response = await client.send('POST', client.repoPath('blobs/uploads/'), {body: Buffer.alloc(0)})
  const text = (await readSmallBody(response)).toString('utf8')
  const location = response.headers.location
  if (response.status !== 202 || location === undefined) {
    if (transientStatus(response.status)) throw Object.assign(new Error(`POST upload answered ${response.status}`), {transient: true})
    throw client.statusError('POST blob upload', response.status, text)
  }
  return location
}

/** How many bytes the session holds, or undefined when the registry cannot say. */
async function sessionOffset(client: RegistryClient, location: string): Promise<number | undefined> {
  try {
    const response = await client.send('GET', location)
    await readSmallBody(response).catch(() => undefined)
    if (response.status !== 204) return undefined
    const range = /^0-(\d+)$/.exec(String(response.headers.range ?? ''))
    return range === null ? 0 : Number(range[1]) + 1
  } catch {
    return undefined
  }
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`
}

/** Uploads `body` as blob `digest` (the caller checked that the registry lacks it). */
export async function uploadBlob(client: RegistryClient, digest: string, body: Buffer, options: UploadOptions = {}): Promise<void> {
  const piece = options.pieceBytes ?? UPLOAD_PIECE
  const retries = options.retries ?? 5
  let failures = 0
  let location: string | undefined
  let offset = 0
  for (;;) {
    try {
      if (location === undefined) {
        location = await startSession(client)
        offset = 0
      }
      while (offset < body.length) {
        const end = Math.min(offset + piece, body.length)
        const response = await client.send('PATCH', location, {
          headers: {'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}`},
          body: body.subarray(offset, end),
        })
        const text = (await readSmallBody(response)).toString('utf8')
        if (response.status !== 202) {
          if (transientStatus(response.status)) throw Object.assign(new Error(`PATCH answered ${response.status}`), {transient: true})
          // A session the registry forgot or refuses to continue: start the blob over.
          if (response.status === 404 || response.status === 416) {
            location = undefined
            throw Object.assign(new Error(`PATCH answered ${response.status}`), {transient: true})
          }
          throw client.statusError(`PATCH blob ${digest}`, response.status, text)
        }
        location = response.headers.location ?? location
        offset = end
        failures = 0
      }
      const response = await client.send('PUT', withDigest(location, digest), {body: Buffer.alloc(0)})
      const text = (await readSmallBody(response)).toString('utf8')
      if (response.status === 201 || response.status === 204) {
        const stored = response.headers['docker-content-digest']
        if (stored !== undefined && stored !== digest)
          throw new UserError(`The registry ${client.ref.host} stored ${digest} as ${String(stored)}`, {code: 'REGISTRY_FAILED'})
        return
      }
      if (transientStatus(response.status)) throw Object.assign(new Error(`PUT answered ${response.status}`), {transient: true})
      if (response.status === 400 && /DIGEST_INVALID|BLOB_UPLOAD_INVALID/.test(text)) {
        // The bytes in the session are not ours (a cut PATCH left a torn piece): start over.
        location = undefined
        throw Object.assign(new Error(`PUT answered ${response.status}`), {transient: true})
      }
      throw client.statusError(`PUT blob ${digest}`, response.status, text)
    } catch (error) {
      if (options.signal?.aborted || error instanceof UserError || !isTransient(error)) throw client.networkError(error)
      failures++
      if (failures > retries)
        throw new UserError(`Uploading ${digest} to ${client.ref.host} failed ${failures} times: ${(error as Error).message}`, {
          code: 'REGISTRY_FAILED',
          hint: 'Run the same push again: the blobs the registry already has are not sent again.',
          cause: error,
        })
      await sleep(Math.min((options.retryDelayMs ?? 300) * 2 ** (failures - 1), 10_000), undefined, {signal: options.signal})
      if (location !== undefined) {
        const held = await sessionOffset(client, location)
        if (held === undefined || held > body.length) location = undefined
        else offset = held
      }
    }
  }
}
