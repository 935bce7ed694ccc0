import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../cli/errors.js'
import {runStreaming} from '../process/run.js'
import {sshArgs} from '../ssh/options.js'
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
  const ssh = sshArgs(context.target, {batch: true})
  if (info.isDirectory()) {
    const {spawn} = await import('node:child_process')
    const tar = spawn('tar', ['-C', source, '-cf', '-', '.'], {stdio: ['ignore', 'pipe', 'inherit']})
    return runStreaming('ssh', [...ssh, `mkdir -p ${destination} && tar -xf - -C ${destination}`], {
      input: tar.stdout,
      onStdout: context.onStdout,
      onStderr: context.onStderr,
    })
  }
  const mode = (info.mode & 0o7777).toString(8)
  const command = `mkdir -p "$(dirname ${destination})" && cat > ${destination} && chmod ${mode} ${destination}`
  return runStreaming('ssh', [...ssh, command], {input: createReadStream(source), onStdout: context.onStdout, onStderr: context.onStderr})
}
