import {UserError} from '../cli/errors.js'
import {runAttached} from '../process/run.js'
import {renderSshConfig, sshArgs, type SshTarget} from '../ssh/options.js'
import {machinePaths} from '../state/machine-files.js'
import {inspectMachine} from './inspect.js'
import {sshTarget} from './up.js'

/** How to reach a running machine over SSH with its own key and pinned host key. */
export async function runningTarget(projectDir: string, name: string): Promise<SshTarget> {
  const {status, record} = await inspectMachine(projectDir, name)
  if (status.state === 'running' && record !== undefined && (record.ssh === undefined || !record.ssh.keyReplaced)) {
    // QEMU runs, but the first boot has not finished (vm up is still waiting for SSH).
    throw new UserError(`Machine ${name} is still booting: SSH is not ready yet`, {
      code: 'NOT_RUNNING',
      hint: `Wait for "vm up ${name}" to finish, then try again.`,
    })
  }
  if (record === undefined || status.state !== 'running' || record.ssh === undefined) {
    throw new UserError(`Machine ${name} is not running (state: ${status.state})`, {
      code: 'NOT_RUNNING',
      hint: `Run "vm up ${name}" first.`,
    })
  }
  const paths = machinePaths(projectDir, name)
  return sshTarget(record, paths, paths.privateKey, 'yes')
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
  const args = sshArgs(target, {tty: command === undefined ? tty : false})
  const hostIndex = args.length - 1
  args.splice(hostIndex, 0, ...extra)
  return runAttached('ssh', command === undefined ? args : [...args, command])
}

export async function machineSshConfig(projectDir: string, name: string, alias: string | undefined): Promise<string> {
  return renderSshConfig(alias ?? name, await runningTarget(projectDir, name))
}
