import {escapeControl} from './terminal-text.js'

/**
 * Download progress for humans: a bar redrawn in place on a TTY (bytes, rate, time left), and
 * occasional plain lines otherwise (logs, CI). Services report numbers; this draws them.
 */
export interface ProgressSample {
  received: number
  total: number | undefined
  resumedFrom: number
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--'
  const s = Math.round(seconds)
  const m = Math.floor(s / 60)
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}:${String(s % 60).padStart(2, '0')}`
}

export class ProgressReporter {
  private readonly started = Date.now()
  private lastDraw = 0
  private lastPercent = 0
  private drawn = false

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly label: string,
    private readonly tty = stream.isTTY === true,
  ) {}

  update(sample: ProgressSample): void {
    const now = Date.now()
    const done = sample.total !== undefined && sample.received >= sample.total
    if (this.tty) {
      if (now - this.lastDraw < 100 && !done) return
      this.lastDraw = now
      this.stream.write(`\r${escapeControl(this.line(sample, now))}\u001B[K`)
      this.drawn = true
      return
    }
    const percent = sample.total === undefined ? -1 : Math.floor((sample.received / sample.total) * 10) * 10
    const due = sample.total === undefined ? now - this.lastDraw >= 10_000 : percent > this.lastPercent && now - this.lastDraw >= 2_000
    if (!due && !(done && this.lastPercent !== 100)) return
    this.lastDraw = now
    this.lastPercent = done ? 100 : percent
    this.stream.write(`${escapeControl(this.line(sample, now))}\n`)
  }

  /** Ends the bar's line, if one was drawn. */
  finish(): void {
    if (this.tty && this.drawn) this.stream.write('\n')
    this.drawn = false
  }

  private line(sample: ProgressSample, now: number): string {
    const seconds = Math.max((now - this.started) / 1000, 0.001)
    const fresh = sample.received - sample.resumedFrom
    const rate = fresh > 0 ? fresh / seconds : 0
    const resumed = sample.resumedFrom > 0 ? ` (resumed at ${formatBytes(sample.resumedFrom)})` : ''
    if (sample.total === undefined || sample.total === 0)
      return `${this.label}: ${formatBytes(sample.received)} at ${formatBytes(rate)}/s${resumed}`
    const fraction = Math.min(sample.received / sample.total, 1)
    const left = rate > 0 ? (sample.total - sample.received) / rate : Number.NaN
    const width = 24
    const filled = Math.round(fraction * width)
    const bar = this.tty ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` : ''
    return `${this.label}: ${bar}${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(sample.received)} / ${formatBytes(sample.total)}, ${formatBytes(rate)}/s, ${formatDuration(left)} left${resumed}`
  }
}
