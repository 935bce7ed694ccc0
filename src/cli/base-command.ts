import {Command, Flags, type Interfaces} from '@oclif/core'

import {CommandOutput, type SuccessJson} from './command-output.js'
import type {Paint} from './style.js'
import type {MachineEvents} from '../machine/events.js'
import {setWarningSink} from '../state/warnings.js'
import {terminalLine, type Printable} from './terminal-text.js'
import {nonexistentFlags, unknownFlagError, type FlagNames} from './unknown-flag.js'

export type {SuccessJson} from './command-output.js'

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

  /** Everything the command prints goes through this (shared with bin/run.js's fast path, src/cli/fast/). */
  protected readonly output = new CommandOutput(() => this.jsonEnabled())
  private debugEnabled = false

  abstract override run(): Promise<T>

  /** Warnings from below the services (the machine index) become this command's warnings. */
  public override async init(): Promise<void> {
    await super.init()
    setWarningSink((text) => this.warn(text))
  }

  /** The directory commands treat as the current one. */
  protected cwd(flags: {cwd?: string | undefined}): string {
    return flags.cwd ?? process.cwd()
  }

  protected setDebug(enabled: boolean): void {
    this.debugEnabled = enabled || this.argv.includes('--debug')
  }

  /** Colours for pieces of a line passed to say(); off in --json mode and when stdout is no TTY. */
  protected get out(): Paint {
    return this.output.out
  }

  /** One line of human output on stdout (escaped; see CommandOutput.say). Nothing in --json mode. */
  protected say(...parts: Printable[]): void {
    this.output.say(...parts)
  }

  /** Several lines (a table): each is escaped on its own, the line breaks are ours. */
  protected sayLines(lines: readonly string[]): void {
    this.output.sayLines(lines)
  }

  /** Progress and status for humans on stderr (downloads, steps); nothing in --json mode. */
  protected status(text: string): void {
    this.output.status(text)
  }

  /** A warning: collected into the JSON result; on stderr (escaped) unless in --json mode. */
  public override warn(input: string | Error): string | Error {
    this.output.warn(typeof input === 'string' ? input : input.message)
    return input
  }

  /**
   * Output of one machine among several: every line prefixed with its name, stderr kept on
   * stderr. `beforeOutput` runs before each line (e.g. to clear a spinner).
   */
  protected machineEvents(name: string, beforeOutput: () => void = () => {}): MachineEvents {
    return {
      info: (text) => {
        beforeOutput()
        this.say(`[${name}] `, text)
      },
      warn: (text) => {
        this.warn(`[${name}] ${text}`)
      },
      // What the guest prints (provisioners): escaped like everything else, tabs kept. In
      // --json mode it goes to stderr, so stdout stays pure JSON.
      output: (stream, line) => {
        beforeOutput()
        const text = `${terminalLine([`[${name}] `, line], {keepTabs: true})}\n`
        if (stream === 'stderr' || this.jsonEnabled()) process.stderr.write(text)
        else process.stdout.write(text)
      },
    }
  }

  protected override toSuccessJson(result: unknown): SuccessJson<unknown> {
    return this.output.successJson(result)
  }

  protected override logJson(json: unknown): void {
    this.output.writeJson(json)
  }

  protected override async catch(thrown: Error & {oclif?: {exit?: number}}): Promise<void> {
    // oclif uses a thrown ExitError for this.exit(); let it through untouched.
    if (thrown.oclif?.exit !== undefined && thrown.message.startsWith('EEXIT')) throw thrown
    const error = this.explain(thrown)
    const debug = this.debugEnabled || this.argv.includes('--debug') || process.env.VM_DEBUG === '1'
    process.exitCode = this.output.fail(error, debug)
  }

  /** oclif's own parse errors in our words where we can say more (a "did you mean"). */
  private explain(error: Error): Error {
    const typed = nonexistentFlags(error)
    if (typed === undefined) return error
    const ctor = this.ctor as {flags?: FlagNames; baseFlags?: FlagNames; enableJsonFlag?: boolean}
    const flags: FlagNames = {...ctor.baseFlags, ...ctor.flags, help: {}, ...(ctor.enableJsonFlag === true ? {json: {}} : {})}
    return unknownFlagError(this.id ?? '', typed, flags)
  }
}
