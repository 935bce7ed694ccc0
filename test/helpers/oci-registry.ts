import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createPrivateKey, randomBytes, sign, X509Certificate} from 'node:crypto'
import {createServer} from 'node:http'
import {request} from 'node:https'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

/**
 * Debian's docker-registry (the reference distribution registry) on 127.0.0.1 with a config
 * the test writes: plain, or with htpasswd (bcrypt) auth and a self-signed certificate whose
 * PEM the test trusts. Stopped by PID.
 */
export interface TestRegistry {
  /** 127.0.0.1:PORT */
  host: string
  port: number
  dir: string
  /** PEM of the self-signed certificate (TLS registries). */
  ca: string | undefined
  caFile: string | undefined
  /** Where blob bytes live on disk: <dir>/data/docker/registry/v2/blobs/sha256/xx/HEX/data */
  blobFile(digest: string): string
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function bcrypt(password: string): string {
  const result = spawnSync(
    'python3',
    ['-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1<<5)))', password],
    {
      encoding: 'utf8',
    },
  )
  if (result.status !== 0 || !result.stdout.startsWith('$2')) throw new Error(`bcrypt via python3 failed: ${result.stderr}`)
  return result.stdout.trim()
}

async function answers(port: number, tls: boolean): Promise<boolean> {
  if (!tls)
    return fetch(`http://127.0.0.1:${port}/v2/`).then(
      () => true,
      () => false,
    )
  return new Promise((resolve) => {
    const req = request({host: '127.0.0.1', port, path: '/v2/', rejectUnauthorized: false}, (res) => {
      res.resume()
      resolve(true)
    })
    req.on('error', () => resolve(false))
    req.end()
  })
}

export const TOKEN_SERVICE = 'vm-test-registry'
export const TOKEN_ISSUER = 'vm-test-issuer'

/**
 * A token service for the registry's Bearer flow, on 127.0.0.1: it checks Basic credentials and
 * answers a JWT (ES256, its certificate in the x5c header, which the registry trusts through
 * rootcertbundle) granting the scope asked for. Counts the tokens it issued.
 */
export interface TokenService {
  realm: string
  certFile: string
  issued: number
  close(): Promise<void>
}

/** A self-signed P-256 certificate and its key, written as cert.pem and key.pem in `dir`. */
function selfSignedCert(dir: string, subject: string, extra: string[] = []): {cert: string; key: string} {
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', subject]
  const made = spawnSync('openssl', [...args, ...extra, '-keyout', key, '-out', cert])
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`)
  return {cert, key}
}

export async function startTokenService(user: string, password: string): Promise<TokenService> {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-token-'))
  const {cert: certFile, key: keyFile} = selfSignedCert(dir, '/CN=vm-test-token')
  const key = createPrivateKey(readFileSync(keyFile))
  const der = new X509Certificate(readFileSync(certFile)).raw.toString('base64')
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const service: TokenService = {realm: '', certFile, issued: 0, close: async () => undefined}
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
    if (req.headers.authorization !== expected) {
      res.writeHead(401).end('{"details":"wrong credentials"}')
      return
    }
    const access = url.searchParams.getAll('scope').map((scope) => {
      const [type, name, actions] = scope.split(':')
      return {type, name, actions: (actions ?? '').split(',')}
    })
    const now = Math.floor(Date.now() / 1000)
    const body = `${b64({alg: 'ES256', typ: 'JWT', x5c: [der]})}.${b64({
      iss: TOKEN_ISSUER,
      sub: user,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    })}`
    const signature = sign('sha256', Buffer.from(body), {key, dsaEncoding: 'ieee-p1363'}).toString('base64url')
    service.issued++
    res.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({token: `${body}.${signature}`}))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  service.realm = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`
  service.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => {
        rmSync(dir, {recursive: true, force: true})
        resolve()
      })
    })
  return service
}

export async function startRegistry(
  options: {auth?: {user: string; password: string}; tls?: boolean; token?: {realm: string; certFile: string}} = {},
): Promise<TestRegistry> {
  if (spawnSync('docker-registry', ['--version']).error !== undefined)
    throw new Error('docker-registry is not installed: run sudo bash scripts/setup-host.sh (Debian package docker-registry)')
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-registry-'))
  const port = await freePort()
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dir}/data`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ]
  let ca: string | undefined
  let caFile: string | undefined
  if (options.tls === true) {
    const {cert, key} = selfSignedCert(dir, '/CN=127.0.0.1', ['-addext', 'subjectAltName=IP:127.0.0.1'])
    lines.push('  tls:', `    certificate: ${cert}`, `    key: ${key}`)
    caFile = cert
    ca = readFileSync(cert, 'utf8')
  }
  if (options.auth !== undefined) {
    const htpasswd = path.join(dir, 'htpasswd')
    writeFileSync(htpasswd, `${options.auth.user}:${bcrypt(options.auth.password)}\n`)
    lines.push('auth:', '  htpasswd:', '    realm: vm-test', `    path: ${htpasswd}`)
  }
  if (options.token !== undefined)
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${options.token.realm}`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${options.token.certFile}`,
    )
  const config = path.join(dir, 'config.yml')
  writeFileSync(config, `${lines.join('\n')}\n`)
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const deadline = Date.now() + 15_000
  while (!(await answers(port, options.tls === true))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      throw new Error(`docker-registry did not start on ${port}: ${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    ca,
    caFile,
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, '')
      return path.join(dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data')
    },
    stop: async () => {
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        process.kill(child.pid, 'SIGTERM')
        await exited
      }
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of `port` that cuts every connection once, the first time
 * `cutAt` bytes have passed in `direction` (up: client to server, down: server to client),
 * then passes everything through. Records whether a client sent a Range request.
 */
export interface CuttingProxy {
  port: number
  host: string
  cuts: number
  sawRange: boolean
  /** Bytes passed in each direction. */
  up: number
  down: number
  close(): Promise<void>
}

export async function startCuttingProxy(target: number, direction: 'up' | 'down', cutAt: number, times = 1): Promise<CuttingProxy> {
  const sockets = new Set<net.Socket>()
  const proxy: CuttingProxy = {port: 0, host: '', cuts: 0, sawRange: false, up: 0, down: 0, close: async () => undefined}
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const cut = () => {
      proxy.cuts++
      client.destroy()
      upstream.destroy()
    }
    // The cut falls inside a message body, never on a packet that starts a request or an answer:
    // a connection closed between messages is what a stale keep-alive connection looks like,
    // which the client rightly retries without counting a failure.
    client.on('data', (data: Buffer) => {
      if (/\r\nrange: bytes=\d+-/i.test(data.toString('latin1'))) proxy.sawRange = true
      proxy.up += data.length
      const startsRequest = /^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/.test(data.subarray(0, 64).toString('latin1'))
      if (direction === 'up' && !startsRequest && proxy.cuts < times && proxy.up >= cutAt * (proxy.cuts + 1)) return cut()
      upstream.write(data)
    })
    upstream.on('data', (data: Buffer) => {
      proxy.down += data.length
      const startsAnswer = data.subarray(0, 8).toString('latin1') === 'HTTP/1.1'
      if (direction === 'down' && !startsAnswer && proxy.cuts < times && proxy.down >= cutAt * (proxy.cuts + 1)) return cut()
      client.write(data)
    })
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined)
      socket.on('close', () => {
        sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.port = (server.address() as net.AddressInfo).port
  proxy.host = `127.0.0.1:${proxy.port}`
  proxy.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    })
  return proxy
}
