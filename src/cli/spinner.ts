import {escapeControl} from './terminal-text.js'

/**
 * A one-line spinner for a terminal: `update(text)` redraws the line, `stop()` clears it.
 * Does nothing when stderr is not a TTY.
 */
export class Spinner {
  private frame = 0
  private timer: NodeJS.Timeout | undefined
  private text = ''
  private readonly enabled: boolean

  constructor(private readonly prefix: string) {
    this.enabled = Boolean(process.stderr.isTTY)
  }

  start(): void {
    if (!this.enabled) return
    this.timer = setInterval(() => this.draw(), 120)
  }

  update(text: string): void {
    this.text = text
  }

  private draw(): void {
    const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'
    this.frame = (this.frame + 1) % frames.length
    const width = (process.stderr.columns ?? 80) - this.prefix.length - 4
    const line = escapeControl(this.text.replace(/[ \t\r\n]+/g, ' ')).slice(0, Math.max(0, width))
    process.stderr.write(`\r\u001B[2K${frames[this.frame]} ${escapeControl(this.prefix)} ${line}`)
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (this.enabled) process.stderr.write('\r\u001B[2K')
  }
}
