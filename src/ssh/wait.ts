import {readFile} from 'node:fs/promises'

import {UserError} from '../cli/errors.js'
import {runProgram, tailLines} from '../process/run.js'
import {sshArgs, type SshTarget} from './options.js'

/** The guest will not come up: the kernel says so on the serial console. */
const KERNEL_PANIC = /Kernel panic - not syncing/

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export async function readTail(file: string, lines = 15): Promise<string> {
  try {
    return tailLines((await readFile(file, 'utf8')).replaceAll('\r', ''), lines)
  } catch {
    return ''
  }
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
}

/**
 * Waits until `ssh ... true` succeeds. QEMU's user-mode network accepts TCP before the guest
 * listens, and early connections hang, so each try has a short connect timeout.
 */
export async function waitForSsh(options: WaitOptions): Promise<number> {
  const start = Date.now()
  const deadline = start + options.timeoutMs
  const args = [...sshArgs(options.target, {batch: true, connectTimeout: 3}), 'true']
  while (Date.now() < deadline) {
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
    try {
      await runProgram('ssh', args, {timeoutMs: 8000})
      return Date.now() - start
    } catch {
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
