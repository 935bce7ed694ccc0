import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {ExternalError, stderrOf} from '../../errors/errors.js'
import {runProgram, type RunResult} from '../../process/run.js'
import {MAX_CONTROL_PATH} from '../../ssh/master.js'
import {controlOptions} from '../../ssh/options.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import {ensureRuntimeDir} from '../../state/private-dir.js'
import {classifyVirshError, libvirtError, type LibvirtFailure} from './errors.js'
import {parseLibvirtUri, sharesSshConnection, withSshCommand, type LibvirtHost} from './uri.js'

/** The virsh program (VM_VIRSH overrides it, e.g. in tests). */
function virshBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.VM_VIRSH ?? 'virsh'
}

export interface VirshCall {
  /** What vm was doing, for messages ("start domain vm-web-..."). */
  doing: string
  /** The pool the call is about (named in a pool-missing error). */
  pool?: string | undefined
  input?: string | Buffer | undefined
  timeoutMs?: number | undefined
}

/** The runtime subdirectory of the ssh wrappers and control sockets of libvirt hosts. */
export const LIBVIRT_RUNTIME_SUBDIR = 'libvirt'

const shellQuote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`

/**
 * The ssh program virsh runs for a shared connection (libvirt's `command=`): `ssh` from PATH,
 * as libvirt would run it, with OpenSSH's connection sharing on `controlPath`.
 */
export function sshWrapperScript(controlPath: string): string {
  const options = controlOptions(controlPath).map(shellQuote).join(' ')
  return `#!/bin/sh\n# vm: virsh's connections to one libvirt host share one ssh connection\nexec ssh ${options} "$@"\n`
}

/** The wrapper and control socket of a URI, in the private runtime directory; undefined when the socket path is too long. */
export function sharedConnectionFiles(runtimeDir: string, uri: string): {wrapper: string; controlPath: string} | undefined {
  const key = createHash('sha256').update(uri).digest('hex').slice(0, 16)
  const controlPath = path.join(runtimeDir, `${key}.sock`)
  if (Buffer.byteLength(controlPath) > MAX_CONTROL_PATH) return undefined
  return {wrapper: path.join(runtimeDir, `ssh-${key}`), controlPath}
}

const connectionUris = new Map<string, Promise<string>>()

/**
 * The URI virsh is given for `uri`. Every `virsh -c qemu+ssh://...` opens an ssh connection
 * of its own (key exchange, login) before libvirt's handshake; vm runs dozens of virsh
 * commands per boot, so its commands to one host share one OpenSSH connection (ControlMaster,
 * kept 60 s after the last use, socket in vm's private runtime directory) through libvirt's
 * `command=` parameter. Sharing is an optimisation: when the wrapper cannot be written, or
 * the user's URI names its own ssh command, virsh gets the URI unchanged.
 */
export function connectionUri(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!sharesSshConnection(uri)) return Promise.resolve(uri)
  let found = connectionUris.get(uri)
  if (found === undefined) {
    found = prepareSharedConnection(uri, env).catch(() => uri)
    connectionUris.set(uri, found)
  }
  return found
}

async function prepareSharedConnection(uri: string, env: NodeJS.ProcessEnv): Promise<string> {
  const files = sharedConnectionFiles(await ensureRuntimeDir(LIBVIRT_RUNTIME_SUBDIR, env), uri)
  if (files === undefined) return uri
  const shared = withSshCommand(uri, files.wrapper)
  if (shared === undefined) return uri
  const script = sshWrapperScript(files.controlPath)
  const current = await readFile(files.wrapper, 'utf8').catch(() => undefined)
  if (current !== script) await writeFileAtomic(files.wrapper, script, {mode: 0o700})
  return shared
}

/** The kind of each error a virsh call threw, for callers that tell them apart (a volume that exists already, say). */
const failures = new WeakMap<object, LibvirtFailure>()

/** What kind of libvirt failure `error` is; undefined when it did not come from virsh. */
export function failureOf(error: unknown): LibvirtFailure | undefined {
  return typeof error === 'object' && error !== null ? failures.get(error) : undefined
}

/**
 * virsh bound to one libvirt host (`virsh -c URI`, always with that URI: never what virsh would
 * default to). Every failure names the host and says what libvirt said (errors.ts).
 */
export class Virsh {
  readonly host: LibvirtHost

  constructor(uri: string) {
    this.host = parseLibvirtUri(uri)
  }

  /** Runs `virsh -c URI ARGS`; a failure becomes the classified error. */
  async run(args: readonly string[], call: VirshCall): Promise<RunResult> {
    // Messages show the user's URI; virsh gets the one that shares the host's ssh connection.
    const argv = ['-q', '-c', this.host.uri, ...args]
    const connectArgv = ['-q', '-c', await connectionUri(this.host.uri), ...args]
    try {
      return await runProgram(virshBinary(), connectArgv, {
        // vm reads virsh's tables and messages: always in the C locale, whatever the user's.
        env: {...process.env, LC_ALL: 'C'},
        input: call.input,
        timeoutMs: call.timeoutMs ?? 120_000,
        missingHint: 'Install the libvirt clients (Debian: apt-get install libvirt-clients).',
      })
    } catch (error) {
      if (!(error instanceof ExternalError)) throw error
      const stderr = stderrOf(error) || error.message
      const failure = libvirtError(this.host.label, this.host.uri, call.doing, argv, stderr, call.pool)
      failures.set(failure, classifyVirshError(stderr))
      throw failure
    }
  }

  /** Like run, but a failure of kind `expected` resolves to undefined instead of throwing. */
  async runUnless(expected: LibvirtFailure, args: readonly string[], call: VirshCall): Promise<RunResult | undefined> {
    try {
      return await this.run(args, call)
    } catch (error) {
      if (failureOf(error) === expected) return undefined
      throw error
    }
  }
}

/**
 * Runs `virsh ARGS FILE` with `xml` in a private temporary file (virsh reads XML from a file,
 * on this host, for any URI; /dev/stdin is no file when stdin is a socket).
 */
export async function withXmlFile<T>(xml: string, use: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'vm-libvirt-'))
  try {
    const file = path.join(dir, 'definition.xml')
    await writeFile(file, xml, {mode: 0o600})
    return await use(file)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
