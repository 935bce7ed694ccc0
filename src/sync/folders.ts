import {existsSync} from 'node:fs'

import {stderrOf, UserError} from '../errors/errors.js'
import {runStreaming} from '../process/run.js'
import {runInGuest, sshCommandLine} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import type {SyncedFolder} from '../vmfile/types.js'
import {shellQuote} from '../provision/shell.js'

/** The 9p mount tag of synced folder `index`. */
export function shareTag(index: number): string {
  return `vm${index}`
}

async function guest(target: SshTarget, command: string): Promise<{code: number; output: string}> {
  try {
    const {stdout} = await runInGuest(target, command, {timeoutMs: 60_000})
    return {code: 0, output: stdout}
  } catch (error) {
    return {code: 1, output: stderrOf(error)}
  }
}

/**
 * rsync options for a folder: .vm/ always left out, plus the folder's excludes. The machine's
 * ssh command line goes in -e, each word quoted as rsync splits it; an IPv6 guest address is
 * bracketed in the destination, as rsync reads [addr]:path.
 */
export function rsyncArgs(folder: SyncedFolder, target: SshTarget): string[] {
  const ssh = sshCommandLine(target)
    .map((part) => shellQuote(part))
    .join(' ')
  const excludes = ['.vm/', ...folder.exclude].flatMap((pattern) => ['--exclude', pattern])
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  return ['-a', '--delete', ...excludes, '--rsync-path', 'sudo -n rsync', '-e', ssh, `${folder.host}/`, `${host}:${folder.guest}/`]
}

/** Copies a folder host to guest with rsync over the machine's SSH settings. */
export async function rsyncFolder(folder: SyncedFolder, target: SshTarget, onLine: (line: string) => void): Promise<void> {
  if (!existsSync(folder.host))
    throw new UserError(`Synced folder ${folder.host} does not exist`, {hint: 'Create it or fix "synced_folders" in the Vmfile.'})
  await guest(target, `sudo -n mkdir -p ${shellQuote(folder.guest)}`)
  const code = await runStreaming('rsync', rsyncArgs(folder, target), {onStdout: onLine, onStderr: onLine})
  if (code !== 0) {
    throw new UserError(`rsync of ${folder.host} to ${folder.guest} failed with status ${code}`, {
      hint: 'rsync must be installed on the host and in the guest (type: 9p needs neither).',
    })
  }
}

export interface SyncReport {
  host: string
  guest: string
  type: '9p' | 'rsync'
}

/**
 * Makes each folder visible in the guest: 9p folders are mounted over SSH; auto picks 9p when
 * the guest kernel has it, else rsync, and says which; rsync folders are copied.
 */
export async function syncFolders(
  folders: readonly SyncedFolder[],
  target: SshTarget,
  onInfo: (text: string) => void,
): Promise<SyncReport[]> {
  const reports: SyncReport[] = []
  for (const [index, folder] of folders.entries()) {
    let type: '9p' | 'rsync' = folder.type === 'rsync' ? 'rsync' : '9p'
    if (type === '9p') {
      const options = `trans=virtio,version=9p2000.L,msize=262144,cache=none${folder.readOnly ? ',ro' : ''}`
      const dir = shellQuote(folder.guest)
      const mount = await guest(
        target,
        `sudo -n modprobe 9pnet_virtio 2>/dev/null; sudo -n mkdir -p ${dir} && (mountpoint -q ${dir} || sudo -n mount -t 9p -o ${options} ${shareTag(index)} ${dir})`,
      )
      if (mount.code !== 0) {
        if (folder.type === '9p')
          throw new UserError(`Cannot mount ${folder.host} at ${folder.guest} over 9p`, {
            details: mount.output.split('\n'),
            hint: 'Use type: rsync for guests without 9p support.',
          })
        type = 'rsync'
      }
    }
    if (type === 'rsync') await rsyncFolder(folder, target, () => {})
    onInfo(`synced folder ${folder.host} -> ${folder.guest} (${type}${folder.type === 'auto' ? ', chosen automatically' : ''})`)
    reports.push({host: folder.host, guest: folder.guest, type})
  }
  return reports
}
