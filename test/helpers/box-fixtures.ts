import {execFileSync} from 'node:child_process'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import type {AddressInfo} from 'node:net'
import path from 'node:path'

/** Makes a small qcow2 disk with qemu-img (a real one: box checks run qemu-img info on it). */
export function makeDisk(file: string, options: {size?: string; backing?: string; format?: 'qcow2' | 'raw'} = {}): string {
  mkdirSync(path.dirname(file), {recursive: true})
  const args = ['create', '-q', '-f', options.format ?? 'qcow2']
  if (options.backing !== undefined) args.push('-F', 'raw', '-b', options.backing)
  args.push(file, options.size ?? '16M')
  execFileSync('qemu-img', args)
  return file
}

export interface BoxSpec {
  /** metadata.json content; a string is written as is. */
  metadata?: Record<string, unknown> | string
  /** Extra files: name -> content. box.img is a fresh qcow2 unless given. */
  files?: Record<string, string | Buffer>
  compress?: 'gzip' | 'none' | 'zstd'
  /** Extra tar arguments naming entries (added with -P, so absolute and ../ paths stay). */
  extraEntries?: string[]
  /** Leave box.img out. */
  noDisk?: boolean
}

/** Packs a .box (tar, optionally compressed) in `dir` from a spec; returns the file. */
export function makeBox(dir: string, fileName: string, spec: BoxSpec = {}): string {
  const work = path.join(dir, `${fileName}.d`)
  mkdirSync(work, {recursive: true})
  const metadata = spec.metadata ?? {provider: 'libvirt', format: 'qcow2', virtual_size: 1}
  writeFileSync(path.join(work, 'metadata.json'), typeof metadata === 'string' ? metadata : JSON.stringify(metadata))
  const entries = ['metadata.json']
  if (spec.noDisk !== true && spec.files?.['box.img'] === undefined) {
    makeDisk(path.join(work, 'box.img'))
    entries.push('box.img')
  }
  for (const [name, content] of Object.entries(spec.files ?? {})) {
    mkdirSync(path.dirname(path.join(work, name)), {recursive: true})
    writeFileSync(path.join(work, name), content)
    entries.push(name)
  }
  const tarFile = path.join(dir, `${fileName}.tar`)
  execFileSync('tar', ['-cPf', tarFile, '-C', work, ...entries, ...(spec.extraEntries ?? [])])
  const out = path.join(dir, fileName)
  const compress = spec.compress ?? 'gzip'
  if (compress === 'gzip') writeFileSync(out, execFileSync('gzip', ['-1c', tarFile], {maxBuffer: 1 << 30}))
  else if (compress === 'zstd') execFileSync('zstd', ['-q', '-f', '-o', out, tarFile])
  else writeFileSync(out, readFileSync(tarFile))
  return out
}

export function sha256(file: string): string {
  return execFileSync('sha256sum', [file]).toString().slice(0, 64)
}

export interface Route {
  body: Buffer
  /** Honour Range requests (default true). */
  ranges?: boolean
  /** Close the connection after this many bytes on the first `dropTimes` responses. */
  dropAfter?: number
  dropTimes?: number
  /** Always answer this status with no body. */
  status?: number
  redirect?: string
  /** Milliseconds to wait between 64 KiB chunks. */
  delayMs?: number
}

export interface TestServer {
  url: string
  routes: Map<string, Route>
  /** Every request seen: path and Range header. */
  log: Array<{path: string; range: string | undefined; authorization: string | undefined}>
  close(): Promise<void>
}

async function send(res: ServerResponse, route: Route, start: number, dropAt: number | undefined): Promise<void> {
  const body = route.body.subarray(start)
  const end = dropAt === undefined ? body.length : Math.min(dropAt, body.length)
  for (let offset = 0; offset < end; offset += 65536) {
    const piece = body.subarray(offset, Math.min(offset + 65536, end))
    if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve))
    if (route.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, route.delayMs))
    if (res.destroyed) return
  }
  if (dropAt !== undefined) res.socket?.destroy()
  else res.end()
}

/** An HTTP server on 127.0.0.1 serving `routes`, able to misbehave on purpose. */
export async function startServer(): Promise<TestServer> {
  const routes = new Map<string, Route>()
  const log: TestServer['log'] = []
  const served = new Map<string, number>()
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    log.push({path: url.pathname, range: req.headers.range, authorization: req.headers.authorization})
    const route = routes.get(url.pathname)
    if (route === undefined) {
      res.writeHead(404).end('not found')
      return
    }
    if (route.redirect !== undefined) {
      res.writeHead(302, {location: route.redirect}).end()
      return
    }
    if (route.status !== undefined) {
      res.writeHead(route.status).end()
      return
    }
    const count = served.get(url.pathname) ?? 0
    served.set(url.pathname, count + 1)
    const drop = route.dropAfter !== undefined && count < (route.dropTimes ?? 1) ? route.dropAfter : undefined
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const total = route.body.length
    if (range !== null && route.ranges !== false) {
      const start = Number(range[1])
      res.writeHead(206, {'content-length': total - start, 'content-range': `bytes ${start}-${total - 1}/${total}`, etag: '"v1"'})
      void send(res, route, start, drop)
      return
    }
    res.writeHead(200, {'content-length': total, etag: '"v1"', 'accept-ranges': route.ranges === false ? 'none' : 'bytes'})
    void send(res, route, 0, drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export function catalogJson(
  name: string,
  versions: Array<{version: string; url: string; checksum?: string; provider?: string; architecture?: string}>,
): string {
  return JSON.stringify({
    name,
    versions: versions.map((entry) => ({
      version: entry.version,
      providers: [
        {
          name: entry.provider ?? 'libvirt',
          url: entry.url,
          architecture: entry.architecture ?? 'amd64',
          ...(entry.checksum === undefined ? {} : {checksum_type: 'sha256', checksum: entry.checksum}),
        },
      ],
    })),
  })
}
