/** The states vm reports, as Vagrant names them; `unknown` when the machine's record cannot be read. */
export type MachineState = 'aborted' | 'not_created' | 'poweroff' | 'running' | 'unknown'

export interface StateEvidence {
  /** A machine record exists (the machine was created). */
  created: boolean
  /** The pidfile names a live process that is this machine's QEMU. */
  processAlive: boolean
  /** What vm last recorded: running after a boot, poweroff after a clean halt. */
  lastRecorded: 'poweroff' | 'running' | undefined
  /** The end of the serial log, to see whether the guest powered itself off. */
  serialTail: string
}

/** The kernel's last words on a clean power-off. */
const CLEAN_POWEROFF = /reboot: Power down|reboot: System halted/

/**
 * Derives a machine's state from evidence on disk and in the process table. QEMU gone after
 * a clean halt, or after the guest powered itself off, is poweroff; gone otherwise (killed,
 * crashed, host rebooted) is aborted.
 */
export function deriveState(evidence: StateEvidence): MachineState {
  if (!evidence.created) return 'not_created'
  if (evidence.processAlive) return 'running'
  if (evidence.lastRecorded !== 'running') return 'poweroff'
  return CLEAN_POWEROFF.test(evidence.serialTail) ? 'poweroff' : 'aborted'
}
