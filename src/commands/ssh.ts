import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {escapeControl} from '../cli/terminal-text.js'
import {UsageError} from '../errors/errors.js'
import {pickMachine} from '../machine/fan-out.js'
import {runOnMachine, sshIntoMachine, type MachineRun} from '../machine/ssh.js'

export interface SshResult {
  /** The first machine named (the only one, usually). */
  machine: string
  /** ssh's status with one machine; with several, 0 when the command succeeded on all, else 1. */
  exitCode: number
  machines: MachineRun[]
}

/** The command line split at the first "--": vm's own arguments, then ssh's. */
export function splitAtDashes(argv: readonly string[]): {own: string[]; ssh: string[]} {
  const at = argv.indexOf('--')
  return at === -1 ? {own: [...argv], ssh: []} : {own: argv.slice(0, at), ssh: argv.slice(at + 1)}
}

export default class Ssh extends BaseCommand<SshResult> {
  static override summary = 'Open a shell in a machine, or run a command there with -c.'
  static override description =
    'Runs OpenSSH with the machine\'s own key and pinned host key, over one connection per machine that later commands reuse. With -c, the command runs and vm exits with its status; with several machines, it runs on each (output prefixed with the machine\'s name) and vm exits non-zero if it failed on any. Everything after "--" goes to ssh. Without a name, the primary machine. An interactive shell started inside a synced folder starts in the matching guest directory.'

  static override examples = [
    '<%= config.bin %> ssh',
    '<%= config.bin %> ssh web -c "uname -a"',
    '<%= config.bin %> ssh web db -c hostname',
    '<%= config.bin %> ssh -t -c top',
    '<%= config.bin %> ssh --workdir /var/log -c "ls"',
    '<%= config.bin %> ssh -- -L 9001:localhost:80 -N',
  ]
  static override strict = false
  static override args = {names: Args.string({description: 'Machines (default: the primary one); several need -c.'})}
  static override flags = {
    command: Flags.string({char: 'c', summary: 'Command to run instead of a shell.'}),
    tty: Flags.boolean({char: 't', summary: 'Give the command a terminal (ssh -tt), e.g. for top or sudo prompts.'}),
    workdir: Flags.string({summary: 'Guest directory to run the command or shell in.'}),
  }

  async run(): Promise<SshResult> {
    const {own, ssh} = splitAtDashes(this.argv)
    const {argv, flags} = await this.parse(Ssh, own)
    const names = argv as string[]
    const option = names.find((name) => name.startsWith('-'))
    if (option !== undefined) {
      throw new UsageError(`Unknown option ${escapeControl(option)} for vm ssh`, {
        hint: `Options for ssh itself go after "--": vm ssh ${names.filter((name) => name !== option).join(' ')} -- ${escapeControl(option)}`.replace(
          '  ',
          ' ',
        ),
      })
    }
    const cwd = this.cwd(flags)
    if (names.length > 1) return this.runOnSeveral(cwd, names, flags, ssh)
    const {project, name} = pickMachine(cwd, names[0])
    // With --json, stdout carries only the result: the command's output goes to stderr.
    if (this.jsonEnabled() && flags.command !== undefined) return this.runOnSeveral(cwd, [name], flags, ssh)
    const exitCode = await sshIntoMachine(project.dir, name, {
      command: flags.command,
      workdir: flags.workdir,
      cwd,
      tty: flags.tty ? 'force' : Boolean(process.stdin.isTTY),
      sshOptions: ssh,
    })
    process.exitCode = exitCode
    return {machine: name, exitCode, machines: [{machine: name, exitCode}]}
  }

  /** The command on each machine, at once, each line of output prefixed with the machine's name. */
  private async runOnSeveral(
    cwd: string,
    names: string[],
    flags: {command?: string | undefined; tty: boolean; workdir?: string | undefined},
    ssh: string[],
  ): Promise<SshResult> {
    if (flags.command === undefined)
      throw new UsageError('An interactive shell needs one machine', {hint: 'Pass -c COMMAND to run a command on each of them.'})
    if (flags.tty) throw new UsageError('-t/--tty needs one machine', {hint: 'Run vm ssh -t once per machine.'})
    if (ssh.length > 0) throw new UsageError('Options for ssh (after "--") need one machine', {hint: 'Run vm ssh once per machine.'})
    const chosen = names.map((name) => pickMachine(cwd, name))
    const machines = await Promise.all(
      chosen.map(({project, name}) => {
        const events = this.machineEvents(name)
        return runOnMachine(project.dir, name, {command: flags.command!, workdir: flags.workdir}, events.output!, {
          rethrow: names.length === 1,
        })
      }),
    )
    const failed = machines.filter((run) => run.exitCode !== 0)
    const exitCode = names.length === 1 ? machines[0]!.exitCode : failed.length > 0 ? 1 : 0
    for (const run of failed) {
      if (run.error !== undefined) this.status(`[${run.machine}] could not run the command: ${run.error}`)
    }
    if (names.length > 1 && failed.length > 0)
      this.status(
        `vm ssh: the command failed on ${failed.map((run) => `${run.machine} (${run.error === undefined ? `exit status ${run.exitCode}` : 'not run'})`).join(', ')}`,
      )
    process.exitCode = exitCode
    return {machine: machines[0]!.machine, exitCode, machines}
  }
}
