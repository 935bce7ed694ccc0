import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open, readdir, readFile, rename, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {UserError} from '../errors/errors.js'
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
}

export interface WriteCatalogResult {
  catalogs: Array<{file: string; name: string; versions: string[]}>
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

const FILE_NAME = /^(.+?)-(\d+(?:\.[0-9A-Za-z]+)*)(?:-([a-z0-9_]+))?\.box$/

/**
 * Writes `<dir>/<box>.json` for the .box files in `dir` (relative URLs, sha256 checksums,
 * sizes). Existing catalogs are updated: entries for other files are kept.
 */
export async function writeCatalogs(options: WriteCatalogOptions): Promise<WriteCatalogResult> {
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
          ) && !names.includes(String(provider.url)),
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
        url: box.file,
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
    await writeFile(`${file}.tmp`, `${JSON.stringify(catalog, null, 2)}\n`)
    await rename(`${file}.tmp`, file)
    catalogs.push({file, name, versions: sorted.map(([version]) => version)})
  }
  return {catalogs, boxes}
}
