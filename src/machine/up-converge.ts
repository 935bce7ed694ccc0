import type {MachineDriver} from '../driver/driver.js'
import {UserError} from '../errors/errors.js'
import {syncFolders} from '../sync/folders.js'
import type {MachineConfig, SyncedFolder} from '../vmfile/types.js'
import {finishBootStage, type Boot} from './boot-context.js'
import {hostnameScript, machineHostname} from './hostname.js'
import {configureGuestNetworks} from './networks.js'
import {provisionRecord} from './provision.js'
import {writeRecord} from './record.js'
import {machineKeys, sshTarget} from './ssh-target.js'

/**
 * The synced folders as the machine's engine can provide them: `auto` becomes rsync on an
 * engine that cannot share folders over 9p (for this machine: `config`, when given, lets the
 * engine decide, e.g. a remote libvirt host), and a folder that insists on 9p there is an error.
 */
export function foldersFor(driver: MachineDriver, folders: readonly SyncedFolder[], config?: MachineConfig): SyncedFolder[] {
  const shares = config === undefined || driver.shares === undefined ? driver.features.shares : driver.shares(config)
  if (shares.includes('9p')) return [...folders]
  return folders.map((folder) => {
    if (folder.type === 'auto') return {...folder, type: 'rsync'}
    if (folder.type === '9p')
      throw new UserError(
        `Synced folder ${folder.host} asks for 9p, which the ${driver.name} engine cannot share${config === undefined ? '' : ' for this machine'}`,
        {
          code: 'FOLDER_UNSUPPORTED',
          hint: 'Set "type: rsync" (or "auto") for this folder in the Vmfile.',
        },
      )
    return folder
  })
}

/** Whether this vm up was asked to provision whatever the machine's state (--provision, --provision-with). */
export function provisioningForced(boot: Pick<Boot, 'options'>): boolean {
  return boot.options.provision === true || (boot.options.provisionWith?.length ?? 0) > 0
}

/** Provisioning after a boot (or on a running machine with --provision): names of the provisioners that ran. */
export async function provisionAfterBoot(boot: Omit<Boot, 'guest' | 'driver'>): Promise<string[]> {
  if (boot.options.provision === false) return []
  const trigger = provisioningForced(boot) ? 'forced' : boot.record.provisioned === true ? 'up' : 'first'
  const {record, ran} = await provisionRecord(
    boot.projectDir,
    boot.record,
    boot.config.provision,
    trigger,
    boot.options.provisionWith,
    boot.events,
  )
  boot.record = record
  return ran
}

/**
 * The guest's host name (hostname.ts), set over SSH when it differs from the one last set:
 * once after the first boot, again after a reload that changed it. Machines of cloud images
 * get it from their seed's meta-data instead. A guest that refuses is a warning, not a failed
 * boot: the machine works without it.
 */
export async function applyHostname(boot: Boot): Promise<void> {
  const hostname = machineHostname(boot.record.config)
  if (boot.record.cloudInit !== undefined || boot.record.hostname === hostname) return
  const target = sshTarget(boot.record, boot.paths, machineKeys(boot.record, boot.paths), 'yes')
  try {
    await boot.guest.runInGuest(target, target.user === 'root' ? 'sh -s' : 'sudo -n sh -s', {
      input: hostnameScript(hostname),
      connectTimeout: 10,
      timeoutMs: 60_000,
      signal: boot.options.interrupt?.signal,
    })
  } catch (error) {
    boot.options.interrupt?.signal.throwIfAborted()
    boot.events.warn(`could not set the host name ${hostname} in the guest: ${(error as Error).message}`)
    return
  }
  boot.record = {...boot.record, hostname}
  await writeRecord(boot.paths.record, boot.record)
}

/**
 * Stage "converge": the guest's host name set, its extra NICs configured, synced folders mounted or copied,
 * provisioners run; each recorded as it finishes. Returns the provisioners that ran.
 */
export async function convergeGuest(boot: Boot): Promise<string[]> {
  const {events, paths} = boot
  const pending = (): readonly string[] => boot.record.pending ?? []
  const target = () => sshTarget(boot.record, paths, machineKeys(boot.record, paths), 'yes')
  await applyHostname(boot)
  if (pending().includes('networks')) {
    const nics = await configureGuestNetworks(boot.record, boot.driver.natAddress, target(), (text) => events.warn(text))
    const addresses = nics.slice(1).flatMap((nic) => (nic.address === undefined ? [] : [`${nic.address} (${nic.type} ${nic.network})`]))
    if (addresses.length > 0) events.info(`networks: ${addresses.join(', ')}`)
    boot.record = {...boot.record, nics}
    await finishBootStage(boot, 'networks')
  }
  if (pending().includes('folders')) {
    await syncFolders(foldersFor(boot.driver, boot.record.config.syncedFolders, boot.record.config), target(), (text) => events.info(text))
    await finishBootStage(boot, 'folders')
  }
  let ran: string[] = []
  if (pending().includes('provision') || provisioningForced(boot)) {
    ran = await provisionAfterBoot(boot)
    if (pending().includes('provision')) await finishBootStage(boot, 'provision')
  }
  return ran
}
