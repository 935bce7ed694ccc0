import {UserError} from '../errors/errors.js'
import {attachToGuest} from '../ssh/exec.js'
import {renderSshConfig, type SshTarget} from '../ssh/options.js'
import {machinePaths} from '../state/machine-files.js'
import {inspectMachine} from './inspect.js'
import {lockHolder} from './lock.js'
import {firstBootUnfinished} from './stages.js'
import {machineKeys, sshTarget} from './ssh-target.js'

/** How to reach a running machine over SSH with its own key and pinned host key. */
export async function runningTarget(projectDir: string, name: string): Promise<SshTarget> {
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
  return sshTarget(record, paths, machineKeys(record, paths), 'yes')
}

/** Runs OpenSSH against the machine: a shell, or `command`; resolves with ssh's exit status. */
export async function sshIntoMachine(
  projectDir: string,
  name: string,
  command: string | undefined,
  extra: string[],
  tty: boolean,
): Promise<number> {
  const target = await runningTarget(projectDir, name)
  return attachToGuest(target, command, {tty: command === undefined ? tty : false, sshOptions: extra})
}

export async function machineSshConfig(projectDir: string, name: string, alias: string | undefined): Promise<string> {
  return renderSshConfig(alias ?? name, await runningTarget(projectDir, name))
}
