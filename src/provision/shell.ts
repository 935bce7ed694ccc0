import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {streamInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import type {Provisioner} from '../vmfile/types.js'

export interface ProvisionContext {
  target: SshTarget
  projectDir: string
  onStdout(line: string): void
  onStderr(line: string): void
}

/** POSIX single-quoting for the remote shell. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`
}

type Shell = Extract<Provisioner, {type: 'shell'}>

/**
 * The remote command of a shell provisioner: it stores the script (sent on stdin, one SSH
 * connection) at upload_path, then runs it from the login directory, as root through sudo
 * when privileged, with the provisioner's environment and arguments.
 */
export function remoteShellCommand(provisioner: Shell): string {
  const file = shellQuote(provisioner.uploadPath)
  const env = Object.entries(provisioner.env).map(([key, value]) => `${key}=${shellQuote(value)}`)
  const run = [
    ...(provisioner.privileged ? ['sudo', '-n'] : []),
    'env',
    ...env,
    provisioner.uploadPath,
    ...provisioner.args.map(shellQuote),
  ]
  return `cat > ${file} && chmod 0755 ${file} && cd ~ && ${run.join(' ')}`
}

/** Runs a shell provisioner; resolves with the script's exit status. */
export async function runShell(provisioner: Shell, context: ProvisionContext): Promise<number> {
  let script: string
  if (provisioner.inline !== undefined)
    script = provisioner.inline.includes('#!') ? provisioner.inline : `#!/bin/sh\n${provisioner.inline}\n`
  else {
    const file = path.resolve(context.projectDir, provisioner.path ?? '')
    try {
      script = await readFile(file, 'utf8')
    } catch (error) {
      throw new UserError(`Provisioner ${provisioner.name}: cannot read the script ${file}`, {
        cause: error,
        hint: 'Check "path" in the Vmfile (relative to the Vmfile).',
      })
    }
  }
  return streamInGuest(context.target, remoteShellCommand(provisioner), {
    input: script,
    onStdout: context.onStdout,
    onStderr: context.onStderr,
  })
}
