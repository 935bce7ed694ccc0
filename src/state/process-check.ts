import {readFileSync} from 'node:fs'

/** The PID in a pidfile, or undefined when there is none or it is garbage. */
export function readPidfile(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** The command line of a live process, or undefined when it is gone (or a zombie). */
export function processCommandLine(pid: number): string[] | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (/\) Z /.test(status)) return undefined
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((part) => part !== '')
  } catch {
    return undefined
  }
}

/**
 * Whether `pid` is the QEMU of this machine: alive and started with this machine's QMP
 * socket on its command line, so a recycled PID never passes for the machine.
 */
export function isMachineProcess(pid: number | undefined, qmpSocket: string): boolean {
  if (pid === undefined) return false
  const argv = processCommandLine(pid)
  return argv !== undefined && argv.some((arg) => arg.includes(qmpSocket))
}
