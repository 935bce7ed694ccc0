/**
 * Waiting for cloud-init in the guest and reading its verdict: `cloud-init status --wait --long`
 * blocks until cloud-init has finished (or, before 23.4, until a stage has failed) and prints
 * a report whose shape changed over the versions:
 *
 * 23.4 and later (exit 0: done; 1: error; 2: done with recoverable errors, "degraded"; Ubuntu's
 * and RHEL's packages return 0 for degraded):
 *     status: done
 *     extended_status: degraded done
 *     boot_status_code: enabled-by-generator
 *     last_update: Thu, 01 Jan 1970 00:00:52 +0000
 *     detail: DataSourceNoCloud [seed=/dev/sr0]
 *     errors:
 *     \t- ('scripts_user', RuntimeError(...))
 *     recoverable_errors:
 *     WARNING:
 *     \t- Failed to run module scripts_user (...)
 *
 * up to 23.3 (exit 0, or 1 for error; the errors are the detail lines):
 *     status: error
 *     time: Mon, 30 Nov 2026 19:00:00 +0000
 *     detail:
 *     ('scripts_user', RuntimeError('Runparts: 1 failures in 1 attempted commands'))
 *
 * Both print a line of dots while waiting.
 */

/** The command to run in the guest (as the SSH user: the status files are world-readable). */
export function cloudInitWaitCommand(): string {
  return 'cloud-init status --wait --long'
}

/** The guest's log of cloud-init's stages and of what its modules and scripts printed. */
export const CLOUD_INIT_LOGS = ['/var/log/cloud-init-output.log', '/var/log/cloud-init.log'] as const

/** A command printing the last `lines` lines of cloud-init's output log, for an error report. */
export function cloudInitLogCommand(lines = 40): string {
  return `sudo -n tail -n ${Math.max(1, Math.floor(lines))} ${CLOUD_INIT_LOGS[0]}`
}

export interface CloudInitVerdict {
  /** True when cloud-init finished and reported no error (recoverable errors are warnings). */
  ok: boolean
  /** `status:` as printed (done, error, disabled, running, not started), or '' when absent. */
  status: string
  /** `extended_status:` (23.4+), e.g. "degraded done" or "error - done". */
  extendedStatus?: string
  /** The datasource line (`detail:` when it is not the error list). */
  detail?: string
  /** Errors cloud-init reported (each one line). */
  errors: string[]
  /** Recoverable errors, each as "LEVEL: message". */
  warnings: string[]
  /**
   * False when cloud-init said it is still running ("error - running", 23.4+): `--wait` returns
   * as soon as a stage has failed (before 23.4 always so, and then there is no telling); the
   * log may still grow.
   */
  finished: boolean
  /** A one-line summary for a message: what went wrong, or "done". */
  summary: string
}

const KEY = /^(status|extended_status|boot_status_code|last_update|time|detail|errors|recoverable_errors):(?: (.*))?$/

/** Reads the output and exit code of cloudInitWaitCommand(). */
export function parseCloudInitStatus(output: string, exitCode: number): CloudInitVerdict {
  const fields = new Map<string, string>()
  const errors: string[] = []
  const warnings: string[] = []
  const detailLines: string[] = []
  let section: string | undefined
  let level = ''
  for (const raw of output.split(/\r?\n/)) {
    const line = raw.replace(/^\.+/, '')
    const match = KEY.exec(line)
    if (match) {
      const [, key, value = ''] = match as unknown as [string, string, string | undefined]
      section = key
      level = ''
      if (key === 'errors' || key === 'recoverable_errors') continue
      fields.set(key, value.trim())
      continue
    }
    if (line.trim() === '') continue
    const item = /^\s*- (.*)$/.exec(line)
    if (section === 'errors' && item) errors.push(item[1]!.trim())
    else if (section === 'recoverable_errors' && item) warnings.push(level === '' ? item[1]!.trim() : `${level}: ${item[1]!.trim()}`)
    else if (section === 'recoverable_errors' && /^[A-Z]+:$/.test(line.trim())) level = line.trim().slice(0, -1)
    // Before 23.4, the lines after "detail:" are the datasource, or the errors one per line.
    else if (section === 'detail') detailLines.push(line.trim())
  }

  const status = fields.get('status') ?? ''
  const extendedStatus = fields.get('extended_status')
  let detail = fields.get('detail') || undefined
  if (detail === undefined && detailLines.length > 0) {
    if (status === 'error') errors.push(...detailLines)
    else detail = detailLines.join(' ')
  }

  const degraded = exitCode === 2 || (extendedStatus?.startsWith('degraded') ?? false)
  const ok = status === 'done' && (exitCode === 0 || exitCode === 2) && !extendedStatus?.startsWith('error')
  let summary: string
  if (ok) summary = degraded ? `done with ${warnings.length} recoverable error(s)` : 'done'
  else if (status === 'error' || exitCode === 1) summary = errors.length > 0 ? `error: ${errors.join('; ')}` : 'error (no detail given)'
  else if (status === 'disabled') summary = 'cloud-init is disabled in the guest, so it did not apply the seed'
  else if (status === '') summary = `no cloud-init status (the command exited with ${exitCode})`
  else summary = `status "${status}" (the command exited with ${exitCode})`

  return {
    ok,
    status,
    ...(extendedStatus === undefined ? {} : {extendedStatus}),
    ...(detail === undefined ? {} : {detail}),
    errors,
    warnings,
    finished: !(extendedStatus?.endsWith('running') ?? status === 'running'),
    summary,
  }
}
