import {processCommandLine, fileIdentity, readPidfile, type FileIdentity} from '../../state/process-check.js'
import {readdirSync} from 'node:fs'

/**
 * How vm recognizes a machine's QEMU among the host's processes: by its pidfile and the
 * machine's first overlay (the same file, by device and inode), never by PID alone.
 */

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

/** The serial console socket a QEMU command line serves (-chardev socket,id=serial0,path=PATH,...). */
export function qemuConsoleSocket(argv: readonly string[]): string | undefined {
  for (const value of optionValues(argv, '-chardev')) {
    if (!value.startsWith('socket,') || suboption(value, 'id') !== 'serial0') continue
    return suboption(value, 'path')
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
  /** The serial console socket, as QEMU was started with it (absent for QEMUs started before it existed). */
  consoleSocket: string | undefined
}

/** The live QEMU of a machine, if any: the PID in its pidfile, checked against its overlay. */
export function findMachineProcess(files: MachineProcessFiles): MachineProcess | undefined {
  const pid = readPidfile(files.pid)
  if (pid === undefined || !isMachineProcess(pid, files)) return undefined
  const argv = processCommandLine(pid) ?? []
  return {pid, qmpSocket: qemuQmpSocket(argv), consoleSocket: qemuConsoleSocket(argv)}
}

/** Whether `pid` is the QEMU of this machine (alive, and holding the machine's overlay). */
export function isMachineProcess(pid: number | undefined, files: MachineProcessFiles): boolean {
  if (pid === undefined) return false
  const overlay = fileIdentity(files.overlay)
  if (overlay === undefined) return false
  const argv = processCommandLine(pid)
  return argv !== undefined && matchesMachine(argv, processFiles(pid, argv), overlay)
}
