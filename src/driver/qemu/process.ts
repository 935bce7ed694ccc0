import {ExternalError} from '../../cli/errors.js'
import {runProgram} from '../../process/run.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import {isMachineProcess, readPidfile} from '../../state/process-check.js'
import {buildQemuArgs} from './args.js'
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
  try {
    const {stderr} = await runProgram(host.qemuBinary, args, {
      timeoutMs: 60_000,
      missingHint: 'Install QEMU (apt-get install qemu-system-x86).',
    })
    await writeFileAtomic(stderrFile, stderr)
  } catch (error) {
    if (error instanceof ExternalError) await writeFileAtomic(stderrFile, error.stderrTail)
    throw error
  }
  const pid = readPidfile(spec.files.pidfile)
  if (!isMachineProcess(pid, spec.files.qmpSocket)) {
    throw new ExternalError('QEMU started but is not running', host.qemuBinary, args, '', {
      hint: `See ${spec.files.serialLog} and ${stderrFile}.`,
    })
  }
  return pid as number
}

async function waitForExit(pid: number, qmpSocket: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isMachineProcess(pid, qmpSocket)) return true
    await sleep(200)
  }
  return !isMachineProcess(pid, qmpSocket)
}

async function qmp(socket: string, command: string): Promise<boolean> {
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

export type StopMethod = 'acpi' | 'already-stopped' | 'killed' | 'quit'

/**
 * Stops a machine's QEMU: ACPI power-down through QMP and a wait of `graceMs` (skipped when
 * 0), then QMP quit, then SIGKILL. Returns how it ended.
 */
export async function stopQemu(pid: number | undefined, qmpSocket: string, graceMs: number): Promise<StopMethod> {
  if (pid === undefined || !isMachineProcess(pid, qmpSocket)) return 'already-stopped'
  if (graceMs > 0 && (await qmp(qmpSocket, 'system_powerdown')) && (await waitForExit(pid, qmpSocket, graceMs))) return 'acpi'
  if ((await qmp(qmpSocket, 'quit')) && (await waitForExit(pid, qmpSocket, 5000))) return 'quit'
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
  await waitForExit(pid, qmpSocket, 5000)
  return 'killed'
}
