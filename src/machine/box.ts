import {existsSync} from 'node:fs'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../cli/errors.js'
import {compareVersions, satisfies} from '../box/version.js'
import {vmPaths} from '../state/paths.js'
import type {MachineConfig} from '../vmfile/types.js'
import type {PinnedBox} from './record.js'

/** Vagrant's escape of "/" in box names on disk. */
const SLASH = '-VAGRANTSLASH-'

function hostArchitecture(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch
}

interface BoxMetadata {
  format?: string
  disks?: Array<{path: string; format?: string}>
  kernel?: string
  initrd?: string
  cmdline?: string
  firmware?: string
  ssh_user?: string
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, {withFileTypes: true}))
      .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
  } catch {
    return []
  }
}

/** The newest stored version of `name` that meets the constraint, for the host architecture. */
export async function findStoredBox(name: string, constraint: string | undefined): Promise<PinnedBox | undefined> {
  const root = path.join(vmPaths().boxes, name.replaceAll('/', SLASH))
  const arch = hostArchitecture()
  const versions = (await list(root))
    .filter((version) => constraint === undefined || satisfies(version, constraint))
    .sort(compareVersions)
    .reverse()
  for (const version of versions) {
    for (const architecture of [arch, 'unknown']) {
      for (const provider of ['qemu', 'libvirt']) {
        const dir = path.join(root, version, architecture, provider)
        if (!existsSync(path.join(dir, 'metadata.json'))) continue
        const metadata = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as BoxMetadata
        const disks = (metadata.disks ?? [{path: 'box.img', format: metadata.format}]).map((disk) => ({
          path: path.join(dir, disk.path),
          format: (disk.format === 'raw' ? 'raw' : 'qcow2') as 'qcow2' | 'raw',
        }))
        const file = (entry: string | undefined): string | undefined => (entry === undefined ? undefined : path.join(dir, entry))
        return {
          name,
          version,
          architecture,
          provider,
          disks,
          kernel: file(metadata.kernel),
          initrd: file(metadata.initrd),
          cmdline: metadata.cmdline,
          firmware: metadata.firmware,
          sshUser: metadata.ssh_user,
        }
      }
    }
  }
  return undefined
}

/** The box a new machine is created from: from the store, else added from the registry. */
export async function resolveBox(config: MachineConfig, events: {info(text: string): void}): Promise<PinnedBox> {
  const stored = await findStoredBox(config.box, config.boxVersion)
  if (stored !== undefined) return stored
  events.info(`box ${config.box} is not in the store`)
  throw new UserError(`Box ${config.box}${config.boxVersion === undefined ? '' : ` (${config.boxVersion})`} is not in the box store`, {
    code: 'BOX_NOT_FOUND',
    hint: `Add it with "vm box add ${config.boxUrl ?? config.box}".`,
  })
}
