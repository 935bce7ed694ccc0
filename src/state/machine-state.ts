/** The states vm reports, as Vagrant names them; `unknown` when the machine's record cannot be read. */
/** `saved`: stopped by vm suspend, its running state kept to be resumed. */
export type MachineState = 'aborted' | 'not_created' | 'poweroff' | 'running' | 'saved' | 'unknown'

export interface StateEvidence {
  /** A machine record exists (the machine was created). */
  created: boolean
  /** The machine's engine process (or domain) runs, as its driver recognizes it. */
  alive: boolean
  /** What vm last recorded: running after a boot, poweroff after a clean halt. */
  lastRecorded: 'poweroff' | 'running' | 'saved' | undefined
  /** The engine holds a saved state of the machine (vm suspend). */
  saved?: boolean | undefined
  /** The guest powered itself off cleanly, as its driver can tell (QEMU: the serial console's last words). */
  cleanPowerOff: boolean
}

/**
 * Derives a machine's state from its record and what its engine says. The engine gone after
 * a clean halt, or after the guest powered itself off, is poweroff; gone otherwise (killed,
 * crashed, host rebooted) is aborted.
 */
export function deriveState(evidence: StateEvidence): MachineState {
  if (!evidence.created) return 'not_created'
  if (evidence.alive) return 'running'
  // Suspended: saved while its state file exists; a lost state file leaves a disk mid-run.
  if (evidence.lastRecorded === 'saved') return evidence.saved === true ? 'saved' : 'aborted'
  if (evidence.lastRecorded !== 'running') return 'poweroff'
  return evidence.cleanPowerOff ? 'poweroff' : 'aborted'
}
