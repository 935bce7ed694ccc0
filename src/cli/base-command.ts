import {Command, Flags, type Interfaces} from '@oclif/core'

import {errorToJson, renderError, classifyError} from './render-error.js'
import {colorsEnabled, createStyle, type Style} from './style.js'

/** The JSON shape of a successful command (stdout in --json mode). */
export interface SuccessJson<T> {
  status: 0
  result: T
  warnings: string[]
}

/** Callbacks through which services report one machine's progress. */
export interface MachineOutput {
  info(text: string): void
  warn(text: string): void
  output(stream: 'stderr' | 'stdout', line: string): void
}

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

/**
 * Every vm command extends this. It adds --json (a typed result object, and nothing but JSON
 * on stdout), --cwd and --debug, and prints every error the same way with an exit code from
 * the one table in exit-codes.ts.
 */
export abstract class BaseCommand<T = unknown> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    cwd: Flags.directory({
      summary: 'Run as if vm was started in this directory.',
      helpGroup: 'GLOBAL',
      exists: true,
    }),
    debug: Flags.boolean({
      summary: 'Print debugging details: stack traces and the commands vm runs.',
      helpGroup: 'GLOBAL',
      env: 'VM_DEBUG',
    }),
  }

  private readonly warnings: string[] = []
  private debugEnabled = false

  abstract override run(): Promise<T>

  /** The directory commands treat as the current one. */
  protected cwd(flags: {cwd?: string | undefined}): string {
    return flags.cwd ?? process.cwd()
  }

  protected setDebug(enabled: boolean): void {
    this.debugEnabled = enabled || this.argv.includes('--debug')
  }

  protected get out(): Style {
    return createStyle(!this.jsonEnabled() && colorsEnabled(process.stdout))
  }

  /** Human output: stdout normally, stderr in --json mode so stdout stays pure JSON. */
  protected say(text: string): void {
    if (this.jsonEnabled()) process.stderr.write(`${text}\n`)
    else process.stdout.write(`${text}\n`)
  }

  /** A warning: always on stderr, and collected into the JSON result. */
  public override warn(input: string | Error): string | Error {
    const text = typeof input === 'string' ? input : input.message
    this.warnings.push(text)
    const style = createStyle(colorsEnabled(process.stderr))
    process.stderr.write(`${style.yellow('Warning:')} ${text}\n`)
    return input
  }

  /**
   * Output of one machine among several: every line prefixed with its name, stderr kept on
   * stderr. `beforeOutput` runs before each line (e.g. to clear a spinner).
   */
  protected machineEvents(name: string, beforeOutput: () => void = () => {}): MachineOutput {
    return {
      info: (text) => {
        beforeOutput()
        this.say(`[${name}] ${text}`)
      },
      warn: (text) => {
        this.warn(`[${name}] ${text}`)
      },
      output: (stream, line) => {
        beforeOutput()
        if (stream === 'stderr') process.stderr.write(`[${name}] ${line}\n`)
        else this.say(`[${name}] ${line}`)
      },
    }
  }

  protected override toSuccessJson(result: unknown): SuccessJson<unknown> {
    return {status: 0, result, warnings: this.warnings}
  }

  protected override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
  }

  protected override async catch(error: Error & {oclif?: {exit?: number}}): Promise<void> {
    // oclif uses a thrown ExitError for this.exit(); let it through untouched.
    if (error.oclif?.exit !== undefined && error.message.startsWith('EEXIT')) throw error
    const debug = this.debugEnabled || this.argv.includes('--debug') || process.env.VM_DEBUG === '1'
    const {exitCode} = classifyError(error)
    if (this.jsonEnabled()) {
      this.logJson(errorToJson(error, this.warnings))
    } else {
      process.stderr.write(`${renderError(error, createStyle(colorsEnabled(process.stderr)), debug)}\n`)
    }
    process.exitCode = exitCode
  }
}
