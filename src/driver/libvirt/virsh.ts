import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {ExternalError, stderrOf} from '../../errors/errors.js'
import {runProgram, type RunResult} from '../../process/run.js'
import {classifyVirshError, libvirtError, type LibvirtFailure} from './errors.js'
import {dropTunnel, tunnelAnswers, tunnelFor} from './tunnel.js'
import {parseLibvirtUri, type LibvirtHost} from './uri.js'

/** The virsh program (VM_VIRSH overrides it, e.g. in tests). */
export function virshBinary(env: NodeJS.ProcessEnv = process.env): string {
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

  /**
   * Runs `virsh -c URI ARGS`; a failure becomes the classified error. A qemu+ssh:// host is
   * reached through vm's shared connection to it (tunnel.ts); a command that cannot reach the
   * host that way runs once more over the URI itself, whose error is the one reported.
   */
  async run(args: readonly string[], call: VirshCall): Promise<RunResult> {
    const tunnelled = this.host.local ? undefined : await tunnelFor(this.host.uri)
    if (tunnelled !== undefined) {
      try {
        return await this.runOn(tunnelled, args, call)
      } catch (error) {
        // A failure the host reported stands; one of the connection (the host did not answer,
        // or the tunnel's master ended under the command) is tried again over the URI itself.
        if (failureOf(error) !== 'unreachable' && (await tunnelAnswers(this.host.uri))) throw error
        dropTunnel(this.host.uri)
      }
    }
    return this.runOn(this.host.uri, args, call)
  }

  private async runOn(uri: string, args: readonly string[], call: VirshCall): Promise<RunResult> {
    // Messages show the URI as the user wrote it, whichever way virsh reached the host.
    const argv = ['-q', '-c', this.host.uri, ...args]
    try {
      return await runProgram(virshBinary(), ['-q', '-c', uri, ...args], {
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
