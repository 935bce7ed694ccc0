import {realpathSync} from 'node:fs'

import {UserError} from '../errors/errors.js'
import {closeMaster} from '../ssh/master.js'
import {attachToGuest, streamInGuest} from '../ssh/exec.js'
import {renderSshConfig, type SshTarget} from '../ssh/options.js'
import {matchingGuestDir, sessionCommand} from '../ssh/session.js'
import {machinePaths} from '../state/machine-files.js'
import {inspectMachine} from './inspect.js'
import {lockHolder} from './lock.js'
import {firstBootUnfinished} from './stages.js'
import type {MachineRecord} from './record.js'
import {machineKeys, sshTarget} from './ssh-target.js'

/** How to reach a running machine over SSH with its own key and pinned host key. */
export async function runningTarget(projectDir: string, name: string): Promise<SshTarget> {
  return (await runningMachine(projectDir, name)).target
}

/** A running machine's record and SSH target; a UserError saying why when it cannot be logged into. */
async function runningMachine(projectDir: string, name: string): Promise<{target: SshTarget; record: MachineRecord}> {
  const {status, record, unreadable} = await inspectMachine(projectDir, name)
  if (unreadable !== undefined) throw unreadable
  if (status.state === 'running' && record !== undefined && firstBootUnfinished(record)) {
    // The machine runs, but the box's insecure key has not been replaced yet: never log in now.
    const holder = await lockHolder(machinePaths(projectDir, name).lock)
    if (holder !== undefined) {
      throw new UserError(`Machine ${name} is still booting: vm up (pid ${holder}) is finishing its first boot`, {
        code: 'NOT_RUNNING',
        hint: `Wait for "vm up ${name}" to finish, then try again.`,
      })
    }
    throw new UserError(`Machine ${name}'s first boot did not finish (vm up was interrupted): its SSH key was never set up`, {
      code: 'BOOT_UNFINISHED',
      hint: `Run "vm up ${name}" to finish it.`,
    })
  }
  if (record === undefined || status.state !== 'running' || record.ssh === undefined) {
    throw new UserError(`Machine ${name} is not running (state: ${status.state})`, {
      code: 'NOT_RUNNING',
      hint: `Run "vm up ${name}" first.`,
    })
  }
  const paths = machinePaths(projectDir, name)
  return {target: sshTarget(record, paths, machineKeys(record, paths), 'yes'), record}
}

export interface SshSession {
  /** Run this instead of a shell (-c). */
  command?: string | undefined
  /** Run in this guest directory (--workdir); fails when it cannot be entered. */
  workdir?: string | undefined
  /** Where vm ssh was started: an interactive shell started inside a synced folder lands in the guest's side of it. */
  cwd?: string | undefined
  /** A terminal for the session: true when this one is a terminal (interactive), 'force' for -t. */
  tty?: boolean | 'force'
  /** Options for ssh itself (after "--"). */
  sshOptions?: readonly string[]
}

function realDir(dir: string): string {
  try {
    return realpathSync(dir)
  } catch {
    return dir
  }
}

/** The guest directory matching `cwd` in the machine's synced folders, as it was booted. */
function landingDir(record: MachineRecord, cwd: string): string | undefined {
  const folders = record.config.syncedFolders.map((folder) => ({host: realDir(folder.host), guest: folder.guest}))
  return matchingGuestDir(folders, realDir(cwd))
}

/** Runs OpenSSH against the machine, attached to this terminal: a shell, or a command; resolves with ssh's exit status. */
export async function sshIntoMachine(projectDir: string, name: string, session: SshSession): Promise<number> {
  return (await sshIntoMachineWhen(projectDir, name, session, async () => true))!
}

/**
 * sshIntoMachine, once the machine is found running, only when `ready` accepts its SSH target
 * (vm ssh's fast path: when its shared connection answers); undefined, having run nothing, otherwise.
 */
export async function sshIntoMachineWhen(
  projectDir: string,
  name: string,
  session: SshSession,
  ready: (target: SshTarget) => Promise<boolean>,
): Promise<number | undefined> {
  const {target, record} = await runningMachine(projectDir, name)
  if (!(await ready(target))) return undefined
  const interactive = session.command === undefined && session.tty === true
  const {command, needsTty} = sessionCommand({
    command: session.command,
    workdir: session.workdir,
    landing: interactive && session.cwd !== undefined ? landingDir(record, session.cwd) : undefined,
  })
  const tty = session.tty === 'force' ? 'force' : session.tty === true && (session.command === undefined || needsTty)
  return attachToGuest(target, command, {tty, sshOptions: session.sshOptions})
}

export interface MachineRun {
  machine: string
  exitCode: number
  /** Why the command could not run there (the machine is not running ...). */
  error?: string
}

/**
 * Runs a command on a running machine without a terminal, each line of its output handed to
 * `output` as it comes; a machine that cannot be logged into is a MachineRun with `error`.
 */
export async function runOnMachine(
  projectDir: string,
  name: string,
  session: Pick<SshSession, 'command' | 'workdir'> & {command: string},
  output: (stream: 'stdout' | 'stderr', line: string) => void,
  options: {rethrow?: boolean} = {},
): Promise<MachineRun> {
  try {
    const {target} = await runningMachine(projectDir, name)
    const {command} = sessionCommand({command: session.command, workdir: session.workdir})
    const exitCode = await streamInGuest(target, command!, {
      onStdout: (line) => output('stdout', line),
      onStderr: (line) => output('stderr', line),
    })
    return {machine: name, exitCode}
  } catch (error) {
    if (options.rethrow === true) throw error
    return {machine: name, exitCode: 1, error: error instanceof Error ? error.message : String(error)}
  }
}

/** Closes the machine's shared SSH connections (see ssh/master.ts): after halt, destroy, restore. */
export async function closeMachineConnections(record: Pick<MachineRecord, 'id'> | undefined): Promise<void> {
  if (record !== undefined) await closeMaster(record.id)
}

export async function machineSshConfig(projectDir: string, name: string, alias: string | undefined): Promise<string> {
  return renderSshConfig(alias ?? name, await runningTarget(projectDir, name))
}
