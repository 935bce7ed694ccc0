import {readFile} from 'node:fs/promises'
import net from 'node:net'

import {ExternalError, stderrOf, UserError, VmError} from '../errors/errors.js'
import {tailLines} from '../process/run.js'
import {runInGuest} from './exec.js'
import {renderProxyJump, type SshTarget} from './options.js'

/** The guest will not come up: the kernel says so on its console. */
const KERNEL_PANIC = /Kernel panic - not syncing/

/** sshd answers but refuses the key: only worth waiting for a little (a guest may add it late). */
const KEY_REFUSED = /Permission denied \(publickey/
const KEY_REFUSED_FOR_MS = 20_000

/**
 * How long a refused key is waited out: 20 s, or VM_KEY_REFUSED_MS (milliseconds, > 0), which
 * the end-to-end tests set to prove the refusal without waiting the full window.
 */
function keyRefusedForMs(): number {
  const ms = Number(process.env.VM_KEY_REFUSED_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : KEY_REFUSED_FOR_MS
}
/** The guest's host key is not the one recorded for this machine: waiting will not change that. */
const HOST_KEY_CHANGED = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The last `lines` lines of a text file ('' when it cannot be read), for a console log or an engine's output. */
export async function readTail(file: string, lines = 15): Promise<string> {
  try {
    return tailLines((await readFile(file, 'utf8')).replaceAll('\r', ''), lines)
  } catch {
    return ''
  }
}

/**
 * Evidence lines for an error's details: `label` on its own line, then the text's lines
 * indented under it ("  | "), or "  (empty)" when there is no text.
 */
export function labelledTail(label: string, text: string): string[] {
  return [label, ...(text === '' ? ['  (empty)'] : text.split('\n').map((line) => `  | ${line}`))]
}

/**
 * Whether an SSH server greets on host:port within `ms`. Cheaper and quicker than a full ssh
 * login: under QEMU's user-mode network a connection made while the guest is still booting is
 * either reset at once (nothing listens yet) or hangs (the guest's network is not up), and the
 * banner arrives the moment sshd accepts.
 */
export function sshBanner(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({host, port})
    let seen = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1')
      if (seen.startsWith('SSH-')) done(true)
      else if (seen.length >= 4) done(false)
    })
    socket.on('error', () => done(false))
    socket.on('close', () => done(false))
  })
}

/**
 * What the engine that boots the machine lets the wait see: whether it still runs, the guest's
 * console, and the evidence to show when the boot fails. The wait knows no engine's files.
 */
export interface BootWatch {
  /** How the engine is named in messages, e.g. "QEMU". */
  engine: string
  /** Whether the machine's engine process (or domain) still runs. */
  isAlive(): boolean | Promise<boolean>
  /** The last `lines` lines of the guest's console ('' when there is none yet). */
  consoleTail(lines: number): Promise<string>
  /** Labelled lines that show how the boot went, for an error's details (console tail, the engine's own output). */
  bootEvidence(): Promise<string[]>
}

export interface WaitOptions {
  target: SshTarget
  timeoutMs: number
  /** The engine's side of the boot: an engine that stops during boot fails the wait at once. */
  watch: BootWatch
  /** Called about once a second with the last line of the guest's console. */
  onProgress?: (lastLine: string) => void
  /** Stops waiting (with the signal's reason) when aborted. */
  signal?: AbortSignal | undefined
  /** How to name the target's keys in messages, in the same order (e.g. the shipped file a temporary copy was made from); default: their paths. */
  keyNames?: readonly string[] | undefined
  /**
   * The login that proves SSH ready, once sshd greets: default `true` over a connection of its
   * own. A caller with work for the guest's first moments (a resumed guest's clock) does it in
   * this login instead of a second one. A failure of ssh itself is retried like the default's;
   * any other vm error (the work failed in the guest) ends the wait.
   */
  login?: ((target: SshTarget, signal: AbortSignal | undefined) => Promise<void>) | undefined
  /**
   * The guest runs with its sshd up already (it continues from a saved state): the first try
   * logs in at once instead of polling the banner first, which would cost the guest a second
   * sshd connection (a process each, slow under emulation).
   */
  sshdUp?: boolean | undefined
}

/**
 * The guest refuses every key offered: name the user and each key tried (files that exist,
 * as the caller named them) and what the Vmfile can set.
 */
export function keyRefused(target: SshTarget, keyNames: readonly string[], said: string): UserError {
  const plural = keyNames.length === 1 ? 'key' : `${keyNames.length} keys`
  return new UserError(`The machine answers on SSH but refuses user ${target.user} with the ${plural} vm offered`, {
    code: 'SSH_KEY_REFUSED',
    details: [
      `user ${target.user} on ${endpoint(target)}: ${said.trim().split('\n').at(-1) ?? ''}`,
      'keys tried, in order:',
      ...keyNames.map((name) => `  ${name}`),
    ],
    hint: `The guest has no user "${target.user}", or its ~${target.user}/.ssh/authorized_keys trusts none of these keys. If the box logs in as another user or with another key, set ssh.user (Vagrant's ssh.username) and ssh.private_key_path in the Vmfile.`,
  })
}

/** Where the target's sshd is, as people write it: host:port ([v6]:port), and the jump host on the way. */
function endpoint(target: SshTarget): string {
  const address = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  return target.jump === undefined ? address : `${address} through ${renderProxyJump(target.jump)}`
}

/**
 * Waits until `ssh ... true` succeeds. Until sshd greets, only its banner is polled (every
 * quarter second, each try given 1.5 s, since early connections can hang); then a real login
 * confirms the key, with a short connect timeout. Behind a jump host this host cannot open a
 * connection to the guest itself: every try is a login through the jump host.
 */
export async function waitForSsh(options: WaitOptions): Promise<number> {
  const {target, watch} = options
  const start = Date.now()
  const deadline = start + options.timeoutMs
  let refusedSince: number | undefined
  const refusedForMs = keyRefusedForMs()
  let pollBanner = options.sshdUp !== true
  while (Date.now() < deadline) {
    options.signal?.throwIfAborted()
    if (!(await watch.isAlive())) {
      throw new UserError(`${watch.engine} exited while the machine was booting`, {
        code: 'BOOT_FAILED',
        details: await watch.bootEvidence(),
        hint: 'The boot output above shows how far the guest got; check the box and the Vmfile (memory, disk).',
      })
    }
    const recent = await watch.consoleTail(40)
    if (KERNEL_PANIC.test(recent)) {
      throw new UserError('The guest kernel panicked during boot', {
        code: 'BOOT_FAILED',
        details: await watch.bootEvidence(),
        hint: 'The console output above shows why; the box may be broken or need more memory.',
      })
    }
    const lastLine = recent.split('\n').at(-1)?.trim() ?? ''
    options.onProgress?.(lastLine)
    const banner = pollBanner
    pollBanner = true
    if (banner && target.jump === undefined && !(await sshBanner(target.host, target.port, 1500))) {
      await sleep(250)
      continue
    }
    try {
      if (options.login === undefined)
        await runInGuest(target, 'true', {connectTimeout: 3, timeoutMs: 8000, signal: options.signal, shared: false})
      else await options.login(target, options.signal)
      return Date.now() - start
    } catch (error) {
      if (error instanceof VmError && !(error instanceof ExternalError)) throw error
      const said = stderrOf(error)
      if (HOST_KEY_CHANGED.test(said))
        throw new UserError("The machine's SSH host key is not the one recorded for it", {
          code: 'SSH_HOST_KEY_CHANGED',
          details: said.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('@')),
          hint: `Another guest may answer at ${endpoint(target)}, or the machine's disk was replaced. If the change is expected, remove ${target.knownHostsFile} and run vm up again.`,
        })
      refusedSince = KEY_REFUSED.test(said) ? (refusedSince ?? Date.now()) : undefined
      if (refusedSince !== undefined && Date.now() - refusedSince >= refusedForMs)
        throw keyRefused(target, options.keyNames ?? target.identityFiles, said)
      await sleep(700)
    }
  }
  throw new UserError(`The machine did not answer on SSH within ${Math.round(options.timeoutMs / 1000)} s (boot_timeout)`, {
    code: 'BOOT_TIMEOUT',
    details: await watch.bootEvidence(),
    hint: 'Raise boot_timeout in the Vmfile if the machine is just slow (software emulation is), or look at the boot output above.',
  })
}
