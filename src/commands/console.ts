import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {terminalLine} from '../cli/terminal-text.js'
import {UsageError, UserError} from '../errors/errors.js'
import {consoleLog, consoleSocket, DETACH_KEY, pipeConsole, runConsoleProgram} from '../machine/console.js'
import {pickMachine} from '../machine/fan-out.js'
import type {MachineState} from '../state/machine-state.js'

interface ConsoleResult {
  machine: string
  state: MachineState
  /** --log: what the console printed since the machine last started. */
  log?: string
  /** Interactive: how the session ended. */
  ended?: 'closed' | 'detached'
}

/** Colour and cursor sequences (CSI) the guest printed: dropped from --log, whose lines are then escaped. */
// eslint-disable-next-line no-control-regex -- the sequences start with ESC
const CSI = /\u001B\[[0-9;?]*[ -/]*[@-~]/g

export default class Console extends BaseCommand<ConsoleResult> {
  static override summary = "Attach to a machine's serial console (or print its log with --log)."
  static override description = `Joins this terminal to the machine's serial console through the socket vm keeps beside its log: what the guest prints appears here, what you type goes to the guest. ${DETACH_KEY} detaches (the machine keeps running; the terminal is restored). One client at a time. With --log, prints what the console printed since the machine last started (control sequences removed or escaped) and exits; that works on a halted machine too.`
  static override examples = ['<%= config.bin %> console', '<%= config.bin %> console web --log']
  static override args = {name: Args.string({description: 'Machine, or an id from global-status (default: the primary one).'})}
  static override flags = {
    log: Flags.boolean({summary: 'Print the console log so far and exit, instead of attaching.'}),
  }

  async run(): Promise<ConsoleResult> {
    const {args, flags} = await this.parse(Console)
    const {project, name} = pickMachine(this.cwd(flags), args.name)
    if (flags.log) {
      const {state, log} = await consoleLog(project.dir, name)
      const lines = log.split(/\r*\n/)
      if (lines.at(-1) === '') lines.pop()
      for (const line of lines) this.say(terminalLine([line.replaceAll(CSI, '').replace(/\r+$/, '')], {keepTabs: true}))
      return {machine: name, state, log}
    }
    if (this.jsonEnabled())
      throw new UsageError('vm console is interactive and prints no JSON', {hint: 'Use "vm console --log --json" to get the log as JSON.'})
    const socket = await consoleSocket(project.dir, name)
    if (typeof socket !== 'string') return {machine: name, state: 'running', ended: await this.attachWith(name, socket)}
    const stdin = process.stdin
    const raw = stdin.isTTY === true
    const restore = (): void => {
      if (raw) stdin.setRawMode(false)
      stdin.pause()
    }
    // A signal while attached must not leave the terminal in raw mode.
    const onSignal = (): void => {
      restore()
      process.exit(130)
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGHUP', onSignal)
    let ended: 'closed' | 'detached'
    try {
      ended = await pipeConsole(socket, stdin, process.stdout, () => {
        process.stderr.write(`Attached to ${terminalLine([name])}'s serial console. Detach with ${DETACH_KEY}.\r\n`)
        if (raw) stdin.setRawMode(true)
      })
    } finally {
      restore()
      process.off('SIGTERM', onSignal)
      process.off('SIGHUP', onSignal)
    }
    process.stderr.write(
      ended === 'detached'
        ? `\nDetached from ${terminalLine([name])}'s console.\n`
        : `\nThe console of ${terminalLine([name])} closed (the machine stopped).\n`,
    )
    return {machine: name, state: 'running', ended}
  }

  /** A console elsewhere (a remote libvirt host): its engine's program gets this terminal (it detaches on Ctrl-] too). */
  private async attachWith(name: string, attach: {program: string; args: string[]}): Promise<'closed' | 'detached'> {
    process.stderr.write(`Attached to ${terminalLine([name])}'s serial console. Detach with ${DETACH_KEY}.\n`)
    const code = await runConsoleProgram(attach)
    if (code !== 0)
      throw new UserError(`The console of ${terminalLine([name])} ended with exit status ${code}`, {
        code: 'CONSOLE_UNAVAILABLE',
        hint: 'Check that the machine runs ("vm status") and that no other client holds its console.',
      })
    process.stderr.write(`\nDetached from ${terminalLine([name])}'s console.\n`)
    return 'detached'
  }
}
