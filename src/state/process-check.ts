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

/** The value of QEMU option `name` (e.g. -qmp) on a command line, each occurrence. */
function optionValues(argv: readonly string[], name: string): string[] {
  const values: string[] = []
  for (let index = 0; index < argv.length - 1; index++) if (argv[index] === name) values.push(argv[index + 1]!)
  return values
}

/** The value of `key=` in a QEMU option value, with QEMU's doubled commas undone. */
function suboption(value: string, key: string): string | undefined {
  const parts = value.replaceAll(',,', '\0').split(',')
  const part = parts.find((candidate) => candidate.startsWith(`${key}=`))
  return part?.slice(key.length + 1).replaceAll('\0', ',')
}

/** The disk files a QEMU command line opens (-drive file=...), in order. */
export function qemuDiskPaths(argv: readonly string[]): string[] {
  return optionValues(argv, '-drive').flatMap((value) => {
    const file = suboption(value, 'file')
    return file === undefined ? [] : [file]
  })
}

/** The QMP Unix socket a QEMU command line serves (-qmp unix:PATH,server=on,...). */
export function qemuQmpSocket(argv: readonly string[]): string | undefined {
  for (const value of optionValues(argv, '-qmp')) {
    if (!value.startsWith('unix:')) continue
    return value.slice('unix:'.length).replaceAll(',,', '\0').split(',')[0]!.replaceAll('\0', ',')
  }
  return undefined
}

/**
 * Pure part of the recognition: a process is a machine's QEMU when its command line is a QEMU
 * one (a pidfile and disks) and one of the files it has open (or names as its disks) is the
 * machine's first overlay, compared by device and inode. Paths may move (project renamed,
 * other runtime directory); the overlay file stays the same file, and a recycled PID never
 * holds it.
 */
export function matchesMachine(argv: readonly string[], openFiles: readonly FileIdentity[], overlay: FileIdentity): boolean {
  if (!argv.includes('-pidfile') || qemuDiskPaths(argv).length === 0) return false
  return openFiles.some((file) => file.dev === overlay.dev && file.ino === overlay.ino)
}

/** Identities of the files a process has open, plus of the disk paths its command line names. */
function processFiles(pid: number, argv: readonly string[]): FileIdentity[] {
  const files: FileIdentity[] = []
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const identity = fileIdentity(`/proc/${pid}/fd/${fd}`)
      if (identity !== undefined) files.push(identity)
    }
  } catch {
    // Another user's process: only its command line can tell.
  }
  for (const disk of qemuDiskPaths(argv)) {
    const identity = fileIdentity(disk)
    if (identity !== undefined) files.push(identity)
  }
  return files
}

/** How vm recognizes a machine's QEMU: its own pidfile and first overlay, both in the machine's state directory. */
export interface MachineProcessFiles {
  pid: string
  overlay: string
}

export interface MachineProcess {
  pid: number
  /** The QMP socket, as QEMU was started with it (it may be in another runtime directory). */
  qmpSocket: string | undefined
}

/** The live QEMU of a machine, if any: the PID in its pidfile, checked against its overlay. */
export function findMachineProcess(files: MachineProcessFiles): MachineProcess | undefined {
  const pid = readPidfile(files.pid)
  return pid !== undefined && isMachineProcess(pid, files) ? {pid, qmpSocket: qemuQmpSocket(processCommandLine(pid) ?? [])} : undefined
}

/** Whether `pid` is the QEMU of this machine (alive, and holding the machine's overlay). */
export function isMachineProcess(pid: number | undefined, files: MachineProcessFiles): boolean {
  if (pid === undefined) return false
  const overlay = fileIdentity(files.overlay)
  if (overlay === undefined) return false
  const argv = processCommandLine(pid)
  return argv !== undefined && matchesMachine(argv, processFiles(pid, argv), overlay)
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
