/**
 * How services report a machine's progress: the one callback type every layer uses (up,
 * reload, provision, halt). The CLI implements it (base-command.ts); tests record it.
 */
export interface MachineEvents {
  info(text: string): void
  warn(text: string): void
  /** The last line of the guest's console while waiting for SSH. */
  progress?(text: string): void
  /** The wait for the guest is over (SSH answered, or the wait failed): no more progress follows. */
  progressDone?(): void
  /** A line of what the guest printed (provisioners); stderr stays stderr. */
  output?(stream: 'stderr' | 'stdout', line: string): void
}

/** Events that go nowhere. */
export const quietEvents: MachineEvents = {info: () => {}, warn: () => {}}
