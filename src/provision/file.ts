import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {spawnIntoPipe, type PipedProgram} from '../process/pipe.js'
import {streamInGuest} from '../ssh/exec.js'
import type {Provisioner} from '../vmfile/types.js'
import {shellQuote, type ProvisionContext} from './shell.js'

type FileProvisioner = Extract<Provisioner, {type: 'file'}>

/**
 * Copies a file or a directory into the guest over one SSH connection, keeping modes: a file
 * is streamed into place; a directory goes as a tar stream unpacked at the destination.
 */
export async function runFile(provisioner: FileProvisioner, context: ProvisionContext): Promise<number> {
  const source = path.resolve(context.projectDir, provisioner.source)
  let info
  try {
    info = await stat(source)
  } catch (error) {
    throw new UserError(`Provisioner ${provisioner.name}: ${source} does not exist`, {
      cause: error,
      hint: 'Check "source" in the Vmfile (relative to the Vmfile).',
    })
  }
  const destination = shellQuote(provisioner.destination)
  if (info.isDirectory()) return uploadDirectory(source, `mkdir -p ${destination} && tar -xf - -C ${destination}`, context)
  const mode = (info.mode & 0o7777).toString(8)
  const command = `mkdir -p "$(dirname ${destination})" && cat > ${destination} && chmod ${mode} ${destination}`
  const input = createReadStream(source)
  try {
    return await streamInGuest(context.target, command, {input, onStdout: context.onStdout, onStderr: context.onStderr})
  } finally {
    input.destroy()
  }
}

/**
 * Runs `tar -c` of the directory with its stdout on the stdin pipe of `ssh ... unpack`, so the
 * archive goes from one program to the other without passing through Node. Fails with ssh's
 * status when the guest side failed (then tar, writing into a closed pipe, is stopped too), and
 * with tar's when the archive could not be made whole (an unreadable file).
 */
async function uploadDirectory(source: string, unpack: string, context: ProvisionContext): Promise<number> {
  let tar: PipedProgram | undefined
  const status = await streamInGuest(context.target, unpack, {
    input(stdin) {
      tar = spawnIntoPipe('tar', ['-C', source, '-cf', '-', '.'], stdin)
      stdin.destroy() // tar holds the pipe now; ssh sees the end of input when tar exits
    },
    onStdout: context.onStdout,
    onStderr: context.onStderr,
  })
  if (tar === undefined) return status
  if (status !== 0) {
    tar.stop()
    await tar.status
    return status // tar's complaint about the closed pipe would only add noise
  }
  const result = await tar.status
  for (const line of tar.stderr().trimEnd().split('\n')) if (line !== '') context.onStderr(line)
  return result
}
