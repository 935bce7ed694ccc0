/**
 * Every exit status `vm` can return. Nothing else in the code base picks a number.
 */
export const ExitCode = {
  /** The command did what was asked. */
  ok: 0,
  /** The command ran and failed: invalid Vmfile, missing box, a program that failed ... */
  failure: 1,
  /** The command line itself is wrong: unknown flag, missing argument. */
  usage: 2,
  /** Another `vm` process holds the machine or box this command needs. */
  locked: 75,
  /** A bug in vm: the error printer asks for a report. */
  internal: 70,
  /** Interrupted by Ctrl-C (SIGINT). */
  interrupted: 130,
} as const

export type ExitCodeName = keyof typeof ExitCode
