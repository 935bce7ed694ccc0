import {readFile} from 'node:fs/promises'
import net from 'node:net'

import {stderrOf, UserError} from '../errors/errors.js'
import {tailLines} from '../process/run.js'
import {runInGuest} from './exec.js'
import type {SshTarget} from './options.js'

/** The guest will not come up: the kernel says so on the serial console. */
const KERNEL_PANIC = /Kernel panic - not syncing/

/** sshd answers but refuses the key: only worth waiting for a little (a guest may add it late). */
const KEY_REFUSED = /Permission denied \(publickey/
const KEY_REFUSED_FOR_MS = 20_000
/** The guest's host key is not the one recorded for this machine: waiting will not change that. */
const HOST_KEY_CHANGED = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export async function readTail(file: string, lines = 15): Promise<string> {
  try {
    return tailLines((await readFile(file, 'utf8')).replaceAll('\r', ''), lines)
  } catch {
    return ''
  }
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

export interface WaitOptions {
  target: SshTarget
  timeoutMs: number
  serialLog: string
  qemuStderr: string
  /** Whether QEMU still runs: a QEMU that exits during boot fails the wait at once. */
  isAlive: () => boolean
  /** Called about once a second with the last line of the boot log. */
  onProgress?: (lastLine: string) => void
  /** Stops waiting (with the signal's reason) when aborted. */
  signal?: AbortSignal | undefined
}

/**
 * Waits until `ssh ... true` succeeds. Until sshd greets, only its banner is polled (every
 * quarter second, each try given 1.5 s, since early connections can hang); then a real login
 * confirms the key, with a short connect timeout.
 */
export async function waitForSsh(options: WaitOptions): Promise<number> {
  const start = Date.now()
  const deadline = start + options.timeoutMs
  let refusedSince: number | undefined
  while (Date.now() < deadline) {
    options.signal?.throwIfAborted()
    if (!options.isAlive()) {
      throw new UserError('QEMU exited while the machine was booting', {
        code: 'BOOT_FAILED',
        details: await bootLogDetails(options),
        hint: 'The serial log above shows how far the guest got; check the box and the Vmfile (memory, disk).',
      })
    }
    const recent = await readTail(options.serialLog, 40)
    if (KERNEL_PANIC.test(recent)) {
      throw new UserError('The guest kernel panicked during boot', {
        code: 'BOOT_FAILED',
        details: await bootLogDetails(options),
        hint: 'The serial log above shows why; the box may be broken or need more memory.',
      })
    }
    const lastLine = recent.split('\n').at(-1)?.trim() ?? ''
    options.onProgress?.(lastLine)
    if (!(await sshBanner(options.target.host, options.target.port, 1500))) {
      await sleep(250)
      continue
    }
    try {
      await runInGuest(options.target, 'true', {connectTimeout: 3, timeoutMs: 8000, signal: options.signal})
      return Date.now() - start
    } catch (error) {
      const said = stderrOf(error)
      if (HOST_KEY_CHANGED.test(said))
        throw new UserError("The machine's SSH host key is not the one recorded for it", {
          code: 'SSH_HOST_KEY_CHANGED',
          details: said.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('@')),
          hint: `Another guest may answer on port ${options.target.port}, or the machine's disk was replaced. If the change is expected, remove ${options.target.knownHostsFile} and run vm up again.`,
        })
      refusedSince = KEY_REFUSED.test(said) ? (refusedSince ?? Date.now()) : undefined
      if (refusedSince !== undefined && Date.now() - refusedSince >= KEY_REFUSED_FOR_MS)
        throw new UserError(`The machine answers on SSH but refuses its key (${options.target.identityFile})`, {
          code: 'SSH_KEY_REFUSED',
          details: [`user ${options.target.user} on 127.0.0.1:${options.target.port}: ${said.trim().split('\n').at(-1)}`],
          hint: `The guest's ~${options.target.user}/.ssh/authorized_keys lacks the machine's key (was the machine killed right after its first boot?). "vm destroy" and "vm up" make it afresh; or add the key from ${options.target.identityFile}.pub in the guest.`,
        })
      await sleep(700)
    }
  }
  throw new UserError(`The machine did not answer on SSH within ${Math.round(options.timeoutMs / 1000)} s (boot_timeout)`, {
    code: 'BOOT_TIMEOUT',
    details: await bootLogDetails(options),
    hint: 'Raise boot_timeout in the Vmfile if the machine is just slow (software emulation is), or look at the serial log above.',
  })
}

async function bootLogDetails(options: WaitOptions): Promise<string[]> {
  const serial = await readTail(options.serialLog)
  const stderr = await readTail(options.qemuStderr, 5)
  return [
    `serial log (${options.serialLog}):`,
    ...(serial === '' ? ['  (empty)'] : serial.split('\n').map((line) => `  | ${line}`)),
    ...(stderr === '' ? [] : ['QEMU stderr:', ...stderr.split('\n').map((line) => `  | ${line}`)]),
  ]
}
