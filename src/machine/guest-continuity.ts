import {stderrOf, UserError} from '../errors/errors.js'
import {shellQuote} from '../provision/shell.js'
import {runInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import {rsyncFolder, shareTag} from '../sync/folders.js'
import type {SyncedFolder} from '../vmfile/types.js'

/**
 * What a guest needs around a saved or restored state: its 9p shares unmounted before QEMU
 * saves it (QEMU refuses to save while one is mounted) and mounted again after, and its clock
 * set to the host's once it continues (it stopped while the host's went on).
 */

/** The 9p mount of synced folder `index` in the guest, with the options vm's folder sync uses. */
function mountCommand(folder: SyncedFolder, index: number, sudo = 'sudo -n '): string {
  const options = `trans=virtio,version=9p2000.L,msize=262144,cache=none${folder.readOnly ? ',ro' : ''}`
  return `${sudo}mount -t 9p -o ${options} ${shareTag(index)} ${shellQuote(folder.guest)}`
}

/** Whether the guest has share `index` mounted (the tag is the mount's source in /proc/mounts). */
function mountedTest(index: number): string {
  return `grep -q '^${shareTag(index)} [^ ]* 9p ' /proc/mounts`
}

/**
 * Unmounts every mounted 9p share; returns the indexes of the folders it unmounted. A busy
 * share is an error, and what was unmounted is mounted again.
 */
export async function unmountShares(target: SshTarget, folders: readonly SyncedFolder[]): Promise<number[]> {
  const candidates = folders.flatMap((folder, index) => (folder.type === 'rsync' ? [] : [index]))
  if (candidates.length === 0) return []
  const script = candidates
    .map((index) => {
      const dir = shellQuote(folders[index]!.guest)
      return `if ${mountedTest(index)}; then sudo -n umount ${dir} || { echo "busy ${index}" >&2; exit 3; }; echo ${index}; fi`
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
  const script = indexes.map((index) => `(${mountedTest(index)} || ${mountCommand(folders[index]!, index)})`).join(' && ')
  await runInGuest(target, script, {timeoutMs: 60_000, connectTimeout: 5})
}

/** The line a continued guest prints when it is ready for the host's time (see clockAnswer). */
export const CLOCK_PROMPT = 'vm-clock'

/**
 * The host's time as a continued guest reads it, asked for the moment the guest can use it (an
 * answer built before the login would be late by the login's seconds): `PRECISE ROUNDED NEXT
 * WAIT`: the time to the millisecond (for a `date` that takes fractions, as GNU's does); the
 * nearest whole second (for one that does not, as busybox's: half a second off at most); the next
 * whole second and the seconds until it, when the guest sets that whole second exactly.
 */
export function clockAnswer(nowMs: number): string {
  const seconds = Math.floor(nowMs / 1000)
  const ms = Math.floor(nowMs - seconds * 1000)
  const precise = `${seconds}.${String(ms).padStart(3, '0')}`
  return `${precise} ${ms >= 500 ? seconds + 1 : seconds} ${seconds + 1} ${((1000 - ms) / 1000).toFixed(3)}\n`
}

/**
 * The guest commands, run as root, that set its clock to the host's: they ask for the host's
 * time (CLOCK_PROMPT, answered by clockAnswer) and set it to the millisecond, or, where `date`
 * takes whole seconds only, to the nearest second at once and to the next whole second exactly
 * when it comes (in the background, so the login does not wait for it; it ignores the hangup a
 * closing session or sudo's terminal sends). Not the emulated RTC: QEMU's counts whole seconds
 * from when QEMU started, so it lags the host's clock by up to a second, and reading it loses
 * up to another.
 */
export function clockCommand(): string {
  const refine = `{ (trap "" HUP; sleep "$wait" && date -u -s "@$next") </dev/null >/dev/null 2>&1 & }`
  return (
    `echo ${CLOCK_PROMPT}; read -r precise rounded next wait; ` +
    `{ date -u -s "@$precise" >/dev/null 2>&1 || { date -u -s "@$rounded" >/dev/null && ${refine}; }; }`
  )
}

/**
 * The command a continued guest runs, as root through one sudo (each sudo costs a noticeable
 * part of a second under software emulation): its clock set (clockCommand), the 9p module
 * loaded if it is not, each share `shares` names mounted unless it is. Prints `clock-failed`
 * when the clock (or sudo) failed and the index of each share it could not mount.
 */
export function continueCommand(folders: readonly SyncedFolder[], shares: readonly number[], root: boolean): string {
  const mounts = shares.map((index) => {
    const folder = folders[index]!
    const dir = shellQuote(folder.guest)
    return `{ { [ -d ${dir} ] || mkdir -p ${dir}; } && { ${mountedTest(index)} || ${mountCommand(folder, index, '')}; }; } >/dev/null 2>&1 || echo ${index}`
  })
  const script = [
    `{ ${clockCommand()}; } || echo clock-failed`,
    ...(shares.length === 0 ? [] : ['[ -d /sys/module/9pnet_virtio ] || modprobe 9pnet_virtio 2>/dev/null; true']),
    ...mounts,
  ].join('; ')
  return `${root ? '' : 'sudo -n '}sh -c ${shellQuote(script)} || echo clock-failed`
}

/** How a continued guest is reached: vm's one way of running guest commands, or a test's stand-in. */
export type RunInGuest = typeof runInGuest

/**
 * The login of a guest that continues from a saved state or snapshot: its clock set from the
 * host's and its 9p shares mounted again (they were unmounted for the save), in one command.
 * It runs over the machine's shared connection, which it opens: whatever follows (vm ssh, the
 * rsync copies) skips the key exchange. Returns the indexes of the folders to copy again:
 * rsync folders, and `auto` ones that could not be mounted over 9p.
 */
export async function continueInLogin(
  target: SshTarget,
  folders: readonly SyncedFolder[],
  options: {run?: RunInGuest; signal?: AbortSignal | undefined; connectTimeout?: number} = {},
): Promise<number[]> {
  const shares = folders.flatMap((folder, index) => (folder.type === 'rsync' ? [] : [index]))
  const script = continueCommand(folders, shares, target.user === 'root')
  const run = options.run ?? runInGuest
  const {stdout} = await run(target, script, {
    timeoutMs: 60_000,
    connectTimeout: options.connectTimeout ?? 5,
    signal: options.signal,
    answer: {prompt: CLOCK_PROMPT, reply: () => clockAnswer(Date.now())},
  })
  if (stdout.includes('clock-failed'))
    throw new UserError("Could not set the guest's clock after it continued", {
      code: 'GUEST_CLOCK',
      hint: 'The guest needs sudo without a password and date; its clock lags by the time it was stopped.',
    })
  const failed = new Set(parseIndexes(stdout))
  for (const index of failed) {
    const folder = folders[index]!
    if (folder.type === '9p')
      throw new UserError(`Cannot mount ${folder.guest} over 9p again after the machine continued`, {
        code: 'FOLDER_MOUNT_FAILED',
        hint: `Run "vm reload" to boot the machine afresh.`,
      })
  }
  return folders.flatMap((folder, index) => (folder.type === 'rsync' || failed.has(index) ? [index] : []))
}

/** Copies folders `indexes` into the guest again (continueInLogin says which). */
export async function copyFolders(
  target: SshTarget,
  folders: readonly SyncedFolder[],
  indexes: readonly number[],
  onInfo: (text: string) => void,
): Promise<void> {
  for (const index of indexes) await rsyncFolder(folders[index]!, target, onInfo)
}

/** What ssh says when it could not reach the guest's sshd at all (as opposed to a refused key or a failed command). */
const UNREACHABLE =
  /connect to host .*: (No route to host|Connection refused|Connection timed out|Network is unreachable)|Connection reset by peer|kex_exchange_identification/

/**
 * A guest that continues from a saved state or a snapshot: continueInLogin, then the copies. Right
 * after a running guest jumps to a snapshot its address may not answer for a moment (libvirt's
 * revert gives it a new tap on the bridge, and the host must learn its neighbour entry again),
 * so a login that cannot reach sshd is tried again, every quarter second, for up to `withinMs`.
 * Any other failure ends it at once.
 */
export async function continueGuest(
  target: SshTarget,
  folders: readonly SyncedFolder[],
  onInfo: (text: string) => void,
  withinMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + withinMs
  for (;;) {
    try {
      const mounted = await continueInLogin(target, folders)
      return await copyFolders(target, folders, mounted, onInfo)
    } catch (error) {
      if (!UNREACHABLE.test(stderrOf(error)) || Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}
