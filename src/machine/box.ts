import {addBox} from '../box/add.js'
import {findBox, type StoredBox} from '../box/store.js'
import type {MachineConfig} from '../vmfile/types.js'
import type {PinnedBox} from './record.js'

/** The login user vm's user-data creates on a cloud image when the Vmfile names none. */
export const CLOUD_IMAGE_USER = 'vm'

function pin(box: StoredBox): PinnedBox {
  return {
    name: box.name,
    version: box.version,
    architecture: box.architecture,
    provider: box.provider,
    disks: box.disks.map((disk) => ({path: disk.path, format: disk.format === 'raw' ? 'raw' : 'qcow2'})),
    kernel: box.kernel,
    initrd: box.initrd,
    cmdline: box.cmdline,
    firmware: box.firmware,
    // A cloud image names no user: vm's cloud-init user-data creates vm's default one.
    sshUser: box.sshUser ?? (box.metadata.cloudInit ? CLOUD_IMAGE_USER : undefined),
    cloudInit: box.metadata.cloudInit || undefined,
    virtualSize: box.metadata.virtualSize,
  }
}

/**
 * The box a new machine is created from: the newest stored version meeting box_version, or,
 * as Vagrant does, one added first from box_url or the registries. The machine is then pinned
 * to that version.
 */
export async function resolveBox(config: MachineConfig, projectDir: string, events: {info(text: string): void}): Promise<PinnedBox> {
  const stored = await findBox(config.box, config.boxVersion)
  if (stored !== undefined) return pin(stored)
  const source = config.boxUrl ?? config.box
  events.info(`box ${config.box} is not in the store; adding it from ${source}`)
  const added = await addBox({
    source,
    name: config.boxUrl === undefined ? undefined : config.box,
    constraint: config.boxVersion,
    cwd: projectDir,
    onStatus: (message) => events.info(message),
  })
  return pin(added.box)
}
