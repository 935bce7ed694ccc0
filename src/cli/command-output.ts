import {errorToJson, renderError, classifyError} from './render-error.js'
import {colorsEnabled, createPaint, createStyle, type Paint} from './style.js'
import {terminalLine, type Printable} from './terminal-text.js'

/** The JSON shape of a successful command (stdout in --json mode). */
export interface SuccessJson<T> {
  status: 0
  result: T
  warnings: string[]
}

/**
 * What a command prints, and how, whichever path runs it: BaseCommand (under oclif) and the
 * fast path of bin/run.js (src/cli/fast/) both print through this class, so that their output
 * is the same byte for byte. Human output is escaped (terminal-text.ts); --json mode prints
 * nothing but the one JSON document on stdout.
 */
export class CommandOutput {
  /** Every warning given, in order: the --json result's `warnings`. */
  readonly warnings: string[] = []

  constructor(readonly jsonEnabled: () => boolean) {}

  /** Colours for pieces of a line passed to say(); off in --json mode and when stdout is no TTY. */
  get out(): Paint {
    return createPaint(createStyle(!this.jsonEnabled() && colorsEnabled(process.stdout)))
  }

  /**
   * One line of human output on stdout, built from its pieces: values are escaped (a control
   * character in a name or path prints as \x1b, never acts), pieces from `out` keep their
   * colour. Nothing in --json mode: the result object carries the same facts.
   */
  say(...parts: Printable[]): void {
    if (this.jsonEnabled()) return
    process.stdout.write(`${terminalLine(parts)}\n`)
  }

  /** Several lines (a table): each is escaped on its own, the line breaks are ours. */
  sayLines(lines: readonly string[]): void {
    for (const line of lines) this.say(line)
  }

  /** Progress and status for humans on stderr (downloads, steps); nothing in --json mode. */
  status(text: string): void {
    if (this.jsonEnabled()) return
    process.stderr.write(`${terminalLine([text])}\n`)
  }

  /** A warning: collected into the JSON result; on stderr (escaped) unless in --json mode. */
  warn(text: string): void {
    this.warnings.push(text)
    if (this.jsonEnabled()) return
    const style = createStyle(colorsEnabled(process.stderr))
    process.stderr.write(`${style.yellow('Warning:')} ${terminalLine([text])}\n`)
  }

  /** A JSON document on stdout, pretty-printed. */
  writeJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
  }

  successJson(result: unknown): SuccessJson<unknown> {
    return {status: 0, result, warnings: this.warnings}
  }

  /** Prints a failed command's error (JSON on stdout, or the human rendering on stderr); returns its exit code. */
  fail(error: unknown, debug: boolean): number {
    if (this.jsonEnabled()) this.writeJson(errorToJson(error, this.warnings))
    else process.stderr.write(`${renderError(error, createStyle(colorsEnabled(process.stderr)), debug)}\n`)
    return classifyError(error).exitCode
  }
}
