/**
 * The clock of a guest that continues from a saved state or snapshot: it stopped while the
 * host's went on, so it is set from the host's time, asked for by the guest over its login.
 */

/** The line a continued guest prints when it is ready for the host's time (see clockAnswer). */
export const CLOCK_PROMPT = 'vm-clock'

/**
 * The host's time as a continued guest reads it, asked for the moment the guest can use it (an
 * answer built before the login would be late by the login's seconds): `PRECISE ROUNDED NEXT
 * WAIT`: the time to the millisecond (for a `date` that takes fractions, as GNU's does); the
 * nearest whole second (for one that does not, as busybox's: half a second off at most); the next
 * whole second and the seconds until it, when the guest sets that whole second exactly.
 */
export function clockAnswer(nowMs: number): string {
  const seconds = Math.floor(nowMs / 1000)
  const ms = Math.floor(nowMs - seconds * 1000)
  const precise = `${seconds}.${String(ms).padStart(3, '0')}`
  return `${precise} ${ms >= 500 ? seconds + 1 : seconds} ${seconds + 1} ${((1000 - ms) / 1000).toFixed(3)}\n`
}

/**
 * The guest commands, run as root, that set its clock to the host's: they ask for the host's
 * time (CLOCK_PROMPT, answered by clockAnswer) and set it to the millisecond, or, where `date`
 * takes whole seconds only, to the nearest second at once and to the next whole second exactly
 * when it comes (in the background, so the login does not wait for it; it ignores the hangup a
 * closing session or sudo's terminal sends). Not the emulated RTC: QEMU's counts whole seconds
 * from when QEMU started, so it lags the host's clock by up to a second, and reading it loses
 * up to another.
 */
export function clockCommand(): string {
  const refine = `{ (trap "" HUP; sleep "$wait" && date -u -s "@$next") </dev/null >/dev/null 2>&1 & }`
  return (
    `echo ${CLOCK_PROMPT}; read -r precise rounded next wait; ` +
    `{ date -u -s "@$precise" >/dev/null 2>&1 || { date -u -s "@$rounded" >/dev/null && ${refine}; }; }`
  )
}
