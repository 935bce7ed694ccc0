import {createReadStream} from 'node:fs'
import {mkdir, open, readFile, rm, stat, writeFile, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {UserError} from '../errors/errors.js'
import {fsUserError, isFsError, onUserData, writeAll} from './fs-errors.js'

/**
 * Byte sources for box archives: local files, or HTTP(S) downloads that survive dropped
 * connections. Downloads are appended to `<cache>/<key>.part` as they arrive, so a later run
 * replays that file and continues with a Range request. The key hashes URL and expected
 * checksum, so a different URL or checksum never resumes into the same file.
 */
export interface DownloadProgress {
  url: string
  /** Bytes delivered so far in this pass (replayed partial bytes included). */
  received: number
  total: number | undefined
  /** Bytes taken from an earlier, interrupted download. */
  resumedFrom: number
}

export interface HttpOptions {
  insecure?: boolean | undefined
  /** A CA bundle (PEM text) to trust for HTTPS. */
  cacert?: string | undefined
  /** Bearer token sent when the URL carries no credentials (VM_BOX_TOKEN). */
  token?: string | undefined
  /** Authorization header values by host (HOST[:PORT]) from stored credentials; they win over `token`. */
  authorizations?: Readonly<Record<string, string>> | undefined
  signal?: AbortSignal | undefined
}

export interface SourceOptions extends HttpOptions {
  url: string
  /** Directory for partial downloads; key names the files in it. */
  cacheDir: string
  cacheKey: string
  retries?: number | undefined
  retryDelayMs?: number | undefined
  onProgress?: ((progress: DownloadProgress) => void) | undefined
}

/** Thrown when the server ignored our Range request: the caller starts over from byte 0. */
export class RestartDownload extends Error {}

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504])

export function partialFile(options: Pick<SourceOptions, 'cacheDir' | 'cacheKey'>): string {
  return path.join(options.cacheDir, `${options.cacheKey}.part`)
}

/** Forgets a partial download (after success, a checksum mismatch or --clean). */
export async function discardPartial(options: Pick<SourceOptions, 'cacheDir' | 'cacheKey'>): Promise<void> {
  const file = partialFile(options)
  await rm(file, {force: true})
  await rm(`${file}.json`, {force: true})
}

export function isHttpUrl(url: string): boolean {
  return /^https?:\/\//i.test(url)
}

/** The bytes at `options.url`, as an async iterable of chunks. */
export function openSource(options: SourceOptions): AsyncIterable<Buffer> {
  return isHttpUrl(options.url) ? httpChunks(options) : fileChunks(options)
}

async function* fileChunks(options: SourceOptions): AsyncIterable<Buffer> {
  const file = options.url.startsWith('file:') ? fileURLToPath(options.url) : options.url
  let total: number
  try {
    const stats = await stat(file)
    if (stats.isDirectory()) {
      throw new UserError(`${file} is a directory, not a box`, {
        code: 'BOX_INVALID',
        hint: 'Give a .box file, a disk image or a catalog. To add an unpacked box, pack it first: tar -czf my.box -C DIRECTORY .',
      })
    }
    if (!stats.isFile())
      throw new UserError(`${file} is not a regular file`, {code: 'BOX_INVALID', hint: 'Give a .box file, a disk image or a catalog.'})
    total = stats.size
  } catch (error) {
    if (error instanceof UserError) throw error
    throw new UserError(
      `Cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
      {
        code: 'BOX_NOT_FOUND',
        hint: 'Check the path, or give a URL or a box name such as org/box.',
      },
    )
  }
  let received = 0
  try {
    for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20, signal: options.signal})) {
      received += (chunk as Buffer).length
      options.onProgress?.({url: options.url, received, total, resumedFrom: 0})
      yield chunk as Buffer
    }
  } catch (error) {
    if (isFsError(error)) throw fsUserError(error, 'read', file)
    throw error
  }
}

/** A failed write to the partial download: what was received so far stays there to resume. */
function cacheWriteError(error: NodeJS.ErrnoException, file: string, offset: number): UserError {
  const failure = fsUserError(error, 'write the download cache', file)
  if (offset === 0) return failure
  return new UserError(failure.message, {
    code: failure.code,
    hint: `${failure.hint ?? 'Fix that, then run the command again.'} The ${(offset / 1048576).toFixed(1)} MiB received are kept to resume from; --clean discards them.`,
    cause: error,
    data: failure.data,
  })
}

interface PartialInfo {
  url: string
  etag?: string | undefined
  lastModified?: string | undefined
  total?: number | undefined
}

/**
 * Headers for a request: none when the URL carries its own credentials, else the stored
 * credential for its host, else the bearer token.
 */
export function authHeaders(
  url: string,
  token: string | undefined,
  authorizations?: Readonly<Record<string, string>>,
): Record<string, string> {
  const parsed = new URL(url)
  if (parsed.username !== '') return {}
  const stored = authorizations?.[parsed.host.toLowerCase()]
  if (stored !== undefined) return {authorization: stored}
  if (token === undefined || token === '') return {}
  return {authorization: `Bearer ${token}`}
}

/** got options shared by catalog fetches and downloads. */
export function gotOptions(url: string, options: HttpOptions) {
  return {
    headers: {'user-agent': 'vmfile', ...authHeaders(url, options.token, options.authorizations)},
    retry: {limit: 0},
    throwHttpErrors: false,
    decompress: false,
    followRedirect: true,
    timeout: {connect: 30_000, socket: 60_000},
    https: {rejectUnauthorized: options.insecure !== true, certificateAuthority: options.cacert},
    signal: options.signal,
  } as const
}

/** A UserError for an HTTP status that retrying will not fix. */
export function httpStatusError(url: string, status: number, message: string | undefined): UserError {
  const hint =
    status === 404
      ? 'Check the URL, box name and version; the server has nothing there.'
      : status === 401 || status === 403
        ? 'The server wants credentials: put them in the URL (https://user:pass@host/...) or set VM_BOX_TOKEN to a bearer token.'
        : 'The server refused the request; try again later or check the URL.'
  return new UserError(`${url} answered ${status}${message ? ` ${message}` : ''}`, {
    code: status === 404 ? 'BOX_NOT_FOUND' : 'DOWNLOAD_FAILED',
    hint,
    data: {url, status},
  })
}

function redact(url: string): string {
  const parsed = new URL(url)
  if (parsed.password !== '') parsed.password = '***'
  return parsed.href
}

async function* httpChunks(options: SourceOptions): AsyncIterable<Buffer> {
  const {default: got} = await import('got')
  const file = partialFile(options)
  const infoFile = `${file}.json`
  await onUserData('create the download cache', options.cacheDir, () => mkdir(options.cacheDir, {recursive: true}))
  const shown = redact(options.url)
  let info = await readFile(infoFile, 'utf8')
    .then((t) => JSON.parse(t) as PartialInfo)
    .catch(() => undefined)
  let offset = await stat(file).then(
    (s) => s.size,
    () => 0,
  )
  if (info?.url !== options.url) offset = 0
  const resumedFrom = offset
  let received = 0
  const report = () => options.onProgress?.({url: shown, received, total: info?.total, resumedFrom})
  if (offset > 0) {
    try {
      for await (const chunk of createReadStream(file, {end: offset - 1, highWaterMark: 1 << 20, signal: options.signal})) {
        received += (chunk as Buffer).length
        report()
        yield chunk as Buffer
      }
    } catch (error) {
      if (isFsError(error)) throw fsUserError(error, 'read the partial download', file)
      throw error
    }
  } else {
    await onUserData('clear the download cache', file, () => discardPartial(options))
  }
  const retries = options.retries ?? 5
  const baseDelay = options.retryDelayMs ?? 500
  let failures = 0
  let lastError = ''
  for (;;) {
    const headers: Record<string, string> = {}
    if (offset > 0) {
      headers.range = `bytes=${offset}-`
      const validator = info?.etag ?? info?.lastModified
      if (validator !== undefined) headers['if-range'] = validator
    }
    const base = gotOptions(options.url, options)
    const request = got.stream(options.url, {...base, headers: {...base.headers, ...headers}})
    let out: FileHandle | undefined
    try {
      const response = await new Promise<{
        statusCode: number
        statusMessage?: string
        headers: Record<string, string | string[] | undefined>
      }>((resolve, reject) => {
        request.once('response', resolve)
        request.once('error', reject)
      })
      const status = response.statusCode
      if (status === 416 || (offset > 0 && status === 200)) {
        request.destroy()
        throw new RestartDownload(`${shown} ignored the range request (status ${status})`)
      }
      if (status !== 200 && status !== 206) {
        request.destroy()
        if (TRANSIENT_STATUS.has(status))
          throw Object.assign(new Error(`${status} ${response.statusMessage ?? ''}`.trim()), {transient: true})
        throw httpStatusError(shown, status, response.statusMessage)
      }
      if (status === 206) {
        const range = /bytes (\d+)-\d+\/(\d+|\*)/.exec(String(response.headers['content-range'] ?? ''))
        if (range === null || Number(range[1]) !== offset) {
          request.destroy()
          throw new RestartDownload(`${shown} answered the range request with the wrong range`)
        }
      }
      const length = Number(response.headers['content-length'])
      info = {
        url: options.url,
        etag: response.headers.etag as string | undefined,
        lastModified: response.headers['last-modified'] as string | undefined,
        total: Number.isFinite(length) && response.headers['content-length'] !== undefined ? offset + length : undefined,
      }
      const record = JSON.stringify(info)
      await onUserData('write the download cache', infoFile, () => writeFile(infoFile, record))
      const partial = await onUserData('write the download cache', file, () => open(file, offset === 0 ? 'w' : 'a'))
      out = partial
      for await (const chunk of request) {
        const buffer = chunk as Buffer
        // Every write is awaited: a full disk is an error here, never an unhandled event.
        await writeAll(partial, buffer).catch((error: unknown) => {
          throw isFsError(error) ? cacheWriteError(error, file, offset) : error
        })
        offset += buffer.length
        received += buffer.length
        failures = 0
        report()
        yield buffer
      }
      if (info.total !== undefined && offset < info.total) throw Object.assign(new Error('the connection closed early'), {transient: true})
      await out.close()
      out = undefined
      return
    } catch (error) {
      request.destroy()
      await out?.close().catch(() => undefined)
      out = undefined
      if (error instanceof RestartDownload || error instanceof UserError || options.signal?.aborted) throw error
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ERR_GOT_REQUEST_ERROR' && /certificate|self.signed|unable to verify/i.test((error as Error).message)) {
        throw new UserError(`Cannot verify the TLS certificate of ${shown}: ${(error as Error).message}`, {
          code: 'DOWNLOAD_TLS',
          hint: 'Pass --cacert FILE with the CA that signed it, or --insecure to skip verification.',
          cause: error,
        })
      }
      failures++
      lastError = (error as Error).message
      if (failures > retries) {
        throw new UserError(`Download of ${shown} failed after ${retries + 1} attempts: ${lastError}`, {
          code: 'DOWNLOAD_FAILED',
          hint:
            offset > 0
              ? `Run the same command again to resume from ${(offset / 1048576).toFixed(1)} MiB (--clean starts over).`
              : 'Check the network and the URL, then try again.',
          cause: error,
          data: {url: shown, received: offset},
        })
      }
      await sleep(Math.min(baseDelay * 2 ** (failures - 1), 15_000), undefined, {signal: options.signal})
    } finally {
      // Also when the reader stops early (the generator returns at a yield).
      if (out !== undefined) {
        request.destroy()
        await out.close().catch(() => undefined)
      }
    }
  }
}
