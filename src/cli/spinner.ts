import {escapeControl} from './terminal-text.js'

/**
 * Boot progress for humans: one line per booting machine with its elapsed time and the last
 * line of its serial console. On a TTY the lines are redrawn in place (each machine keeps its
 * own line, so two machines booting at once never share one); otherwise a plain line now and
 * then, with no escape sequences. Services report through MachineEvents.progress; this draws.
 */

export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean | undefined
  columns?: number | undefined
}

interface Booting {
  started: number
  console: string
  /** Non-TTY: when this machine's last plain line was printed, and what it said. */
  printedAt?: number
  printed?: string
}

/** A console line made safe and short: whitespace runs become one space, control characters escaped. */
export function consoleText(line: string): string {
  return escapeControl(
    line
      // eslint-disable-next-line no-control-regex -- colour and cursor sequences start with ESC
      .replaceAll(/\u001B\[[0-9;?]*[ -/]*[@-~]/g, '')
      .replaceAll(/\s+/g, ' ')
      .trim(),
  )
}

/** "[web] booting 12s: <console>", cut to `width` characters. */
export function bootLine(name: string, elapsedMs: number, console: string, width = Number.POSITIVE_INFINITY): string {
  const head = `[${escapeControl(name)}] booting ${Math.floor(elapsedMs / 1000)}s`
  const line = console === '' ? head : `${head}: ${console}`
  return line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line
}

export interface BootProgressOptions {
  /** Redraw in place (default: the stream is a TTY). */
  tty?: boolean
  now?: () => number
  /** TTY: how often the lines are redrawn (elapsed time ticks even when the console is quiet). */
  redrawMs?: number
  /** Not a TTY: at most one line per machine this often, and only when its console said something new. */
  plainEveryMs?: number
}

export class BootProgress {
  private readonly machines = new Map<string, Booting>()
  private readonly tty: boolean
  private readonly now: () => number
  private readonly plainEveryMs: number
  private readonly redrawMs: number
  private drawn = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly stream: ProgressStream,
    options: BootProgressOptions = {},
  ) {
    this.tty = options.tty ?? stream.isTTY === true
    this.now = options.now ?? Date.now
    this.plainEveryMs = options.plainEveryMs ?? 10_000
    this.redrawMs = options.redrawMs ?? 500
  }

  /** The machine's console printed `line` (called about once a second while it boots). */
  update(name: string, line: string): void {
    const now = this.now()
    const entry = this.machines.get(name) ?? {started: now, console: ''}
    this.machines.set(name, entry)
    const text = consoleText(line)
    if (text !== '') entry.console = text
    if (this.tty) {
      this.timer ??= setInterval(() => this.draw(), this.redrawMs)
      this.draw()
      return
    }
    const due = entry.printedAt === undefined || (now - entry.printedAt >= this.plainEveryMs && entry.console !== entry.printed)
    if (!due) return
    entry.printedAt = now
    entry.printed = entry.console
    this.stream.write(`${bootLine(name, now - entry.started, entry.console)}\n`)
  }

  /** The machine's boot is over (SSH answers, or it failed): its line goes. */
  done(name: string): void {
    if (!this.machines.delete(name)) return
    if (this.tty) this.draw()
    if (this.machines.size === 0) this.stop()
  }

  /** Before other output on the same terminal: the lines are erased; the next update or tick draws them again below it. */
  clear(): void {
    if (!this.tty || this.drawn === 0) return
    this.stream.write(`\u001B[${this.drawn}A\r\u001B[J`)
    this.drawn = 0
  }

  /** Every line erased and the timer stopped. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.clear()
  }

  private draw(): void {
    const now = this.now()
    const width = Math.max(20, (this.stream.columns ?? 80) - 1)
    const lines = [...this.machines].map(([name, entry]) => bootLine(name, now - entry.started, entry.console, width))
    const erase = this.drawn === 0 ? '' : `\u001B[${this.drawn}A\r\u001B[J`
    this.stream.write(`${erase}${lines.map((line) => `${line}\n`).join('')}`)
    this.drawn = lines.length
  }
}
