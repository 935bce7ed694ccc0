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
  if (info.isDirectory()) return uploadDirectory(source, [...ssh, `mkdir -p ${destination} && tar -xf - -C ${destination}`], context)
  const mode = (info.mode & 0o7777).toString(8)
  const command = `mkdir -p "$(dirname ${destination})" && cat > ${destination} && chmod ${mode} ${destination}`
  const input = createReadStream(source)
  try {
    return await runStreaming('ssh', [...ssh, command], {input, onStdout: context.onStdout, onStderr: context.onStderr})
  } finally {
    input.destroy()
  }
}

/**
 * Streams `tar -c` of the directory into `ssh ... tar -x`. Fails with tar's status when the
 * archive could not be made whole (an unreadable file), and with ssh's when the guest side
 * failed (then tar is stopped rather than left writing into a closed pipe).
 */
async function uploadDirectory(source: string, ssh: string[], context: ProvisionContext): Promise<number> {
  const {spawn} = await import('node:child_process')
  const tar = spawn('tar', ['-C', source, '-cf', '-', '.'], {stdio: ['ignore', 'pipe', 'pipe']})
  const tarStatus = new Promise<number>((resolve) => {
    tar.on('error', (error) => {
      context.onStderr(`cannot run tar: ${error.message}`)
      resolve(127)
    })
    tar.on('close', (code) => resolve(code ?? 128))
  })
  let rest = ''
  tar.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n')
    rest = lines.pop() ?? ''
    for (const line of lines) context.onStderr(line)
  })
  tar.stderr.on('end', () => rest !== '' && context.onStderr(rest))
  const status = await runStreaming('ssh', ssh, {input: tar.stdout, onStdout: context.onStdout, onStderr: context.onStderr})
  if (status !== 0) {
    tar.kill()
    await tarStatus
    return status
  }
  return tarStatus
}
