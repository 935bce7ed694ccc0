import path from 'node:path'

import {vmPaths} from '../../state/paths.js'
import type {MachineProcessFiles} from './machine-process.js'

/** The files the QEMU driver keeps in a machine's directory, by name, in one place. */
export const QemuFile = {
  overlay: (index: number) => `disk${index}.qcow2`,
  pid: 'qemu.pid',
  serialLog: 'serial.log',
  /** The serial console's Unix socket (vm console), beside its log. */
  consoleSocket: 'console.sock',
  stderr: 'qemu.stderr',
  /** The running state vm suspend saved (QEMU's migration stream, uncompressed); present only while suspended. */
  savedState: 'saved-state',
} as const

/** Overlay file names: what `destroy` checks no process still holds. */
export const OVERLAY_NAME = /^disk\d+\.qcow2$/

export interface QemuPaths {
  /** The machine's own state directory. */
  dir: string
  pid: string
  serialLog: string
  /** QEMU's own start-up output. */
  stderr: string
  savedState: string
  /**
   * On a short path in the runtime directory (Unix socket paths are limited to 108 bytes), named
   * by the machine id. A running QEMU is asked for its own socket (machine-process.ts) instead:
   * the runtime directory may differ between shells.
   */
  qmpSocket: string
  /**
   * The serial console's socket: beside serial.log, or in the runtime directory (named by the
   * machine id) when that path is too long for a Unix socket. A running QEMU is asked for the
   * one it was started with (machine-process.ts).
   */
  consoleSocket: string
  overlay(index: number): string
  /** What recognizes the machine's QEMU: files in its own state directory, not in the runtime one. */
  process: MachineProcessFiles
}

/** Unix socket paths hold at most 107 bytes (sun_path is 108 with its NUL). */
const MAX_SOCKET_PATH = 107

function socketPath(wanted: string, fallback: string): string {
  return Buffer.byteLength(wanted) <= MAX_SOCKET_PATH ? wanted : fallback
}

export function qemuPaths(dir: string, id: string | undefined, env: NodeJS.ProcessEnv = process.env): QemuPaths {
  const at = (file: string): string => path.join(dir, file)
  return {
    dir,
    pid: at(QemuFile.pid),
    serialLog: at(QemuFile.serialLog),
    stderr: at(QemuFile.stderr),
    savedState: at(QemuFile.savedState),
    qmpSocket: path.join(vmPaths(env).runtime, `${id ?? 'unknown'}.qmp`),
    consoleSocket: socketPath(at(QemuFile.consoleSocket), path.join(vmPaths(env).runtime, `${id ?? 'unknown'}.console`)),
    overlay: (index) => at(QemuFile.overlay(index)),
    process: {pid: at(QemuFile.pid), overlay: at(QemuFile.overlay(0))},
  }
}
