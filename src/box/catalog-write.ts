import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {lstat, mkdir, open, readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {UsageError, UserError} from '../errors/errors.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {decompressor, detectCompression} from './archive.js'
import {parseBoxMetadata, type BoxMetadata} from './metadata.js'
import {compareVersions} from './version.js'

export interface CatalogEntry {
  file: string
  name: string
  version: string
  architecture: string
  provider: string
  size: number
  sha256: string
}

export interface WriteCatalogOptions {
  dir: string
  /** Box name for archives whose metadata.json names none. */
  name?: string | undefined
  description?: string | undefined
  /**
   * The URL DIR is served at. With it, box URLs are absolute (Vagrant resolves a relative URL
   * against its own working directory, not the catalog's URL) and each catalog is also written
   * at DIR/<org>/<box>, the path Vagrant asks for under VAGRANT_SERVER_URL.
   */
  baseUrl?: string | undefined
}

export interface WriteCatalogResult {
  /** `serverFile`: the copy at DIR/<org>/<box> (only with a base URL and an org/box name). */
  catalogs: Array<{file: string; serverFile: string | undefined; name: string; versions: string[]}>
  boxes: CatalogEntry[]
}

/** One pass over a .box file: its sha256 and its metadata.json. */
async function inspectArchive(file: string): Promise<{sha256: string; metadata: BoxMetadata}> {
  const hash = createHash('sha256')
  const {Parser} = await import('tar')
  let text: string | undefined
  const parser = new Parser({
    onReadEntry: (entry) => {
      if (entry.path.replace(/^(\.\/)+/, '') !== 'metadata.json') return entry.resume()
      const parts: Buffer[] = []
      entry.on('data', (chunk: Buffer) => parts.push(chunk))
      entry.on('end', () => (text = Buffer.concat(parts).toString('utf8')))
    },
  })
  const handle = await open(file, 'r')
  const head = Buffer.alloc(8)
  await handle.read(head, 0, 8, 0).finally(() => handle.close())
  const filter = await decompressor(detectCompression(head))
  const digest = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk)
      callback(null, chunk)
    },
  })
  const sink = async (content: AsyncIterable<Buffer>) => {
    for await (const chunk of content) if (!parser.write(chunk)) await new Promise((resolve) => parser.once('drain', resolve))
  }
  const input = createReadStream(file, {highWaterMark: 1 << 20})
  if (filter === undefined) await pipeline(input, digest, sink)
  else await pipeline(input, digest, filter, sink)
  parser.end()
  if (text === undefined)
    throw new UserError(`${file} has no metadata.json`, {
      code: 'BOX_INVALID',
      hint: 'Is it a Vagrant box for the libvirt or qemu provider?',
    })
  return {sha256: hash.digest('hex'), metadata: parseBoxMetadata(text, file)}
}

/** The base URL as a directory URL (ending in /); http(s) and file only. */
export function parseBaseUrl(text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(`--base-url ${JSON.stringify(text)} is not a URL`, {
      hint: 'For example --base-url https://boxes.example.com/vmfile',
    })
  }
  if (!['http:', 'https:', 'file:'].includes(url.protocol))
    throw new UsageError(`--base-url ${JSON.stringify(text)} is not an http(s) or file URL`, {
      hint: 'For example --base-url https://boxes.example.com/vmfile',
    })
  if (url.search !== '' || url.hash !== '')
    throw new UsageError(`--base-url ${JSON.stringify(text)} has a query or fragment`, {hint: 'Give the URL of the directory only.'})
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`
  return url
}

/** The absolute URL of `file` (a name in DIR) under the base: the name is percent-encoded. */
export function boxFileUrl(base: URL, file: string): string {
  return new URL(encodeURIComponent(file), base).href
}

/** Writes a catalog readable by the web server that serves it, atomically. */
async function writeCatalogFile(file: string, text: string): Promise<void> {
  const existing = await lstat(file).catch(() => undefined)
  if (existing !== undefined && !existing.isFile())
    throw new UserError(`Cannot write the catalog ${file}: something other than a file is in the way`, {
      code: 'BOX_INVALID',
      hint: 'Move it away and run the command again.',
    })
  await writeFileAtomic(file, text, {mode: 0o644})
}

const FILE_NAME = /^(.+?)-(\d+(?:\.[0-9A-Za-z]+)*)(?:-([a-z0-9_]+))?\.box$/

/**
 * Writes `<dir>/<box>.json` for the .box files in `dir` (sha256 checksums, sizes; URLs relative
 * to the catalog, or absolute under `baseUrl`). Existing catalogs are updated: entries for
 * other files are kept.
 */
export async function writeCatalogs(options: WriteCatalogOptions): Promise<WriteCatalogResult> {
  const base = options.baseUrl === undefined ? undefined : parseBaseUrl(options.baseUrl)
  const link = (file: string) => (base === undefined ? file : boxFileUrl(base, file))
  const names = (await readdir(options.dir)).filter((file) => file.endsWith('.box')).sort()
  if (names.length === 0) throw new UserError(`${options.dir} holds no .box files`, {code: 'BOX_NOT_FOUND'})
  const boxes: CatalogEntry[] = []
  for (const file of names) {
    const full = path.join(options.dir, file)
    const {sha256, metadata} = await inspectArchive(full)
    const parsed = FILE_NAME.exec(file)
    const name = metadata.name ?? options.name
    const version = metadata.version ?? parsed?.[2]
    if (name === undefined || version === undefined) {
      throw new UserError(`Cannot tell the name or version of ${file}`, {
        code: 'BOX_INVALID',
        hint: 'Put "name" and "version" in its metadata.json, or pass --name and name the file NAME-VERSION-ARCH.box.',
      })
    }
    boxes.push({
      file,
      name,
      version,
      architecture: metadata.architecture ?? parsed?.[3] ?? 'amd64',
      provider: metadata.provider,
      size: (await stat(full)).size,
      sha256,
    })
  }
  const catalogs: WriteCatalogResult['catalogs'] = []
  for (const name of [...new Set(boxes.map((box) => box.name))]) {
    const file = path.join(options.dir, `${name.split('/').at(-1)}.json`)
    const old = await readFile(file, 'utf8')
      .then(
        (text) =>
          JSON.parse(text) as {description?: string; versions?: Array<{version: string; providers: Array<Record<string, unknown>>}>},
      )
      .catch(() => undefined)
    const ours = boxes.filter((box) => box.name === name)
    const versions = new Map<string, Array<Record<string, unknown>>>()
    for (const entry of old?.versions ?? []) {
      const kept = (entry.providers ?? []).filter(
        (provider) =>
          !ours.some(
            (box) =>
              box.version === entry.version &&
              box.provider === provider.name &&
              box.architecture === (provider.architecture ?? box.architecture),
          ) && !names.some((file) => provider.url === file || provider.url === link(file)),
      )
      versions.set(entry.version, kept)
    }
    for (const box of ours) {
      // One entry per provider and architecture in a version: a later file replaces an earlier one.
      const list = (versions.get(box.version) ?? []).filter(
        (provider) => provider.name !== box.provider || provider.architecture !== box.architecture,
      )
      list.push({
        name: box.provider,
        url: link(box.file),
        checksum_type: 'sha256',
        checksum: box.sha256,
        size: box.size,
        architecture: box.architecture,
        default_architecture: box.architecture === 'amd64',
      })
      versions.set(box.version, list)
    }
    const sorted = [...versions.entries()].filter(([, providers]) => providers.length > 0).sort(([a], [b]) => compareVersions(b, a))
    const catalog = {
      name,
      description: options.description ?? old?.description ?? name,
      versions: sorted.map(([version, providers]) => ({version, providers})),
    }
    const text = `${JSON.stringify(catalog, null, 2)}\n`
    await writeCatalogFile(file, text)
    // Vagrant's server convention: VAGRANT_SERVER_URL=BASE asks for BASE/<org>/<box>.
    let serverFile: string | undefined
    if (base !== undefined && name.includes('/')) {
      serverFile = path.join(options.dir, ...name.split('/'))
      await mkdir(path.dirname(serverFile), {recursive: true})
      await writeCatalogFile(serverFile, text)
    }
    catalogs.push({file, serverFile, name, versions: sorted.map(([version]) => version)})
  }
  return {catalogs, boxes}
}
