import {readdirSync, readFileSync, statSync} from 'node:fs'

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
 * When a live process started (clock ticks since boot, /proc/PID/stat field 22), or undefined
 * when it is gone or a zombie: the same PID with the same start time is the same process.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[0] === 'Z' ? undefined : fields[19]
  } catch {
    return undefined
  }
}

/** A file's identity: the same file under any path, and never another file under the same path. */
export interface FileIdentity {
  dev: number
  ino: number
}

export function fileIdentity(file: string): FileIdentity | undefined {
  try {
    const stat = statSync(file)
    return {dev: stat.dev, ino: stat.ino}
  } catch {
    return undefined
  }
}

/** PIDs of our processes that have `file` open (e.g. a QEMU whose pidfile was lost). */
export function processesHolding(file: string): number[] {
  const target = fileIdentity(file)
  if (target === undefined) return []
  const holders: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${entry}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      const identity = fileIdentity(`/proc/${entry}/fd/${fd}`)
      if (identity !== undefined && identity.dev === target.dev && identity.ino === target.ino) {
        holders.push(Number(entry))
        break
      }
    }
  }
  return holders
}
