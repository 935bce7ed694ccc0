import {UserError} from '../errors/errors.js'
import {shellQuote} from '../provision/shell.js'
import {runInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import {shareTag} from '../sync/folders.js'
import type {SyncedFolder} from '../vmfile/types.js'

/**
 * What a guest needs around a saved or restored state: its 9p shares unmounted before QEMU
 * saves it (QEMU refuses to save while one is mounted) and mounted again after, and its clock
 * set from the host once it continues (it stopped while the host's went on).
 */

/** The 9p mount of synced folder `index` in the guest, with the options vm's folder sync uses. */
function mountCommand(folder: SyncedFolder, index: number): string {
  const options = `trans=virtio,version=9p2000.L,msize=262144,cache=none${folder.readOnly ? ',ro' : ''}`
  return `sudo -n mount -t 9p -o ${options} ${shareTag(index)} ${shellQuote(folder.guest)}`
}

/** Whether the guest has share `index` mounted (the tag is the mount's source in /proc/mounts). */
function mountedTest(index: number): string {
  return `grep -q '^${shareTag(index)} [^ ]* 9p ' /proc/mounts`
}

/**
 * Unmounts every mounted 9p share; returns the indexes of the folders it unmounted. `lazy`
 * (before a restore, whose state replaces the guest's anyway) detaches a busy share instead of
 * failing; otherwise a busy share is an error, and what was unmounted is mounted again.
 */
export async function unmountShares(target: SshTarget, folders: readonly SyncedFolder[], lazy = false): Promise<number[]> {
  const candidates = folders.flatMap((folder, index) => (folder.type === 'rsync' ? [] : [index]))
  if (candidates.length === 0) return []
  const script = candidates
    .map((index) => {
      const dir = shellQuote(folders[index]!.guest)
      const umount = lazy ? `(sudo -n umount ${dir} || sudo -n umount -l ${dir})` : `sudo -n umount ${dir}`
      return `if ${mountedTest(index)}; then ${umount} || { echo "busy ${index}" >&2; exit 3; }; echo ${index}; fi`
    })
    .join('; ')
  const result = await runInGuest(target, script, {timeoutMs: 60_000, connectTimeout: 5, okCodes: [0, 3]})
  const done = parseIndexes(result.stdout)
  const busy = /busy (\d+)/.exec(result.stderr)
  if (result.code === 3 && busy !== null) {
    await mountShares(target, folders, done).catch(() => undefined)
    const folder = folders[Number(busy[1])]!
    throw new UserError(`Cannot unmount synced folder ${folder.guest} in the guest: it is in use`, {
      code: 'SHARE_BUSY',
      hint: `QEMU cannot save a machine while a 9p folder is mounted. Stop the programs that use ${folder.guest} in the guest (or leave that directory), then try again.`,
    })
  }
  return done
}

function parseIndexes(text: string): number[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^\d+$/.test(line))
    .map(Number)
}

/** Mounts the 9p shares of folders `indexes` again (those unmountShares took down). */
export async function mountShares(target: SshTarget, folders: readonly SyncedFolder[], indexes: readonly number[]): Promise<void> {
  if (indexes.length === 0) return
  await runInGuest(target, mountCommands(folders, indexes), {timeoutMs: 60_000, connectTimeout: 5})
}

/**
 * The guest command that sets its clock from the host's: from the emulated RTC, which follows
 * the host's clock (QEMU's default -rtc clock=host; read from sysfs, without hwclock's wait
 * for the next tick), else through hwclock, else to the host's time as sent (`hostSeconds`).
 */
export function clockCommand(hostSeconds: number): string {
  const rtc = 't=$(cat /sys/class/rtc/rtc0/since_epoch 2>/dev/null) && [ -n "$t" ] && sudo -n date -u -s "@$t" >/dev/null'
  return `{ ${rtc} || sudo -n hwclock -u -s 2>/dev/null || sudo -n date -u -s @${hostSeconds} >/dev/null; }`
}

/** Sets the guest's clock from the host's (clockCommand); `then` runs after it in the same login. */
export async function setGuestClock(target: SshTarget, then?: string): Promise<void> {
  const command = clockCommand(Math.round(Date.now() / 1000))
  await runInGuest(target, then === undefined ? command : `${command} && ${then}`, {timeoutMs: 60_000, connectTimeout: 5})
}

/** The command that mounts the 9p shares of folders `indexes` that are not mounted; `true` for none. */
export function mountCommands(folders: readonly SyncedFolder[], indexes: readonly number[]): string {
  if (indexes.length === 0) return 'true'
  return indexes.map((index) => `(${mountedTest(index)} || ${mountCommand(folders[index]!, index)})`).join(' && ')
}
