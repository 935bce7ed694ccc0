import {open} from 'node:fs/promises'

import {ExternalError} from '../../errors/errors.js'
import {runProgram} from '../../process/run.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import {processStartTime, readPidfile} from '../../state/process-check.js'
import {isMachineProcess, type MachineProcessFiles} from './machine-process.js'
import {buildQemuArgs} from './args.js'
import type {StopMethod} from '../driver.js'
import {QmpClient} from './qmp.js'
import type {HostFacts, MachineSpec} from './spec.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Starts QEMU detached from the terminal (-daemonize): returns once QEMU has set up the machine
 * (disks opened, ports bound) with the PID of the running QEMU. QEMU's start-up stderr is kept
 * in `stderrFile`; a QEMU that fails to start is an ExternalError with what it said.
 */
export async function startQemu(spec: MachineSpec, host: HostFacts, stderrFile: string): Promise<number> {
  const args = buildQemuArgs(spec, host)
  // QEMU keeps its inherited copy (INCOMING_FD) until it has read the state; ours closes once it has started.
  const state = spec.incomingFile === undefined ? undefined : await open(spec.incomingFile, 'r')
  try {
    const {stderr} = await runProgram(host.qemuBinary, args, {
      timeoutMs: 60_000,
      missingHint: 'Install QEMU (apt-get install qemu-system-x86).',
      passFds: state === undefined ? undefined : [state.fd],
    })
    await writeFileAtomic(stderrFile, stderr)
  } catch (error) {
    if (error instanceof ExternalError) await writeFileAtomic(stderrFile, error.stderrTail)
    throw error
  } finally {
    await state?.close()
  }
  const pid = readPidfile(spec.files.pidfile)
  if (!isMachineProcess(pid, {pid: spec.files.pidfile, overlay: spec.disks[0]?.path ?? ''})) {
    throw new ExternalError('QEMU started but is not running', host.qemuBinary, args, '', {
      hint: `See ${spec.files.serialLog} and ${stderrFile}.`,
    })
  }
  return pid as number
}

/** Waits until process `pid`, started at `started`, has exited (not merely closed its disks). */
async function waitForExit(pid: number, started: string | undefined, timeoutMs: number): Promise<boolean> {
  const gone = (): boolean => started === undefined || processStartTime(pid) !== started
  const start = Date.now()
  const deadline = start + timeoutMs
  while (Date.now() < deadline) {
    if (gone()) return true
    // Often: a quit takes QEMU a few tens of milliseconds, and whoever waits (vm package's export,
    // a restart) waits for it; checking costs one read of /proc: every 5 ms in the first second.
    await sleep(Date.now() - start < 1000 ? 5 : 20)
  }
  return gone()
}

async function qmp(socket: string | undefined, command: string): Promise<boolean> {
  if (socket === undefined) return false
  try {
    const client = await QmpClient.connect(socket, 2000)
    try {
      await client.execute(command)
    } finally {
      client.close()
    }
    return true
  } catch {
    return false
  }
}

/**
 * Stops a machine's QEMU, recognized by `files` (process-check.ts): ACPI power-down through
 * QMP and a wait of `graceMs` (skipped when 0), then QMP quit, then SIGKILL. The QMP socket is
 * the one QEMU was started with (`qmpSocket`, from its command line). Returns how it ended;
 * throws when QEMU still runs after all of that.
 */
export async function stopQemu(
  running: {pid: number; qmpSocket: string | undefined} | undefined,
  files: MachineProcessFiles,
  graceMs: number,
): Promise<StopMethod> {
  if (running === undefined) return 'already-stopped'
  const {pid, qmpSocket} = running
  // Identified once as the machine's QEMU; from then on its own exit is what counts.
  const started = processStartTime(pid)
  if (!isMachineProcess(pid, files) || started === undefined) return 'already-stopped'
  if (graceMs > 0 && (await qmp(qmpSocket, 'system_powerdown')) && (await waitForExit(pid, started, graceMs))) return 'acpi'
  if ((await qmp(qmpSocket, 'quit')) && (await waitForExit(pid, started, 5000))) return 'quit'
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
  if (!(await waitForExit(pid, started, 5000))) {
    throw new ExternalError(`QEMU (pid ${pid}) did not stop, even after SIGKILL`, 'qemu', [], '', {
      hint: `Stop process ${pid} by hand (it may belong to another user), then try again.`,
    })
  }
  return 'killed'
}
