import {stderrOf, UserError} from '../errors/errors.js'
import {shellQuote} from '../provision/shell.js'
import {runInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import {rsyncFolder, shareTag} from '../sync/folders.js'
import type {SyncedFolder} from '../vmfile/types.js'
import {armScript, helperLoginCommand, HELPER_GONE} from './continue-helper.js'
import {clockAnswer, clockCommand, CLOCK_PROMPT} from './guest-clock.js'

/**
 * What a guest needs around a saved or restored state: its 9p shares unmounted before QEMU
 * saves it (QEMU refuses to save while one is mounted) and mounted again after, its clock set
 * to the host's once it continues (it stopped while the host's went on, guest-clock.ts), and a
 * root helper left waiting by the save to do that without sudo (continue-helper.ts).
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

/**
 * The commands, run as root, of a continued guest: its clock set (clockCommand), the 9p module
 * loaded if it is not, each share `shares` names mounted unless it is. They print `clock-failed`
 * when the clock failed and the index of each share they could not mount.
 */
export function continueScript(folders: readonly SyncedFolder[], shares: readonly number[]): string {
  const mounts = shares.map((index) => {
    const folder = folders[index]!
    const dir = shellQuote(folder.guest)
    return `{ { [ -d ${dir} ] || mkdir -p ${dir}; } && { ${mountedTest(index)} || ${mountCommand(folder, index, '')}; }; } >/dev/null 2>&1 || echo ${index}`
  })
  return [
    `{ ${clockCommand()}; } || echo clock-failed`,
    ...(shares.length === 0 ? [] : ['[ -d /sys/module/9pnet_virtio ] || modprobe 9pnet_virtio 2>/dev/null; true']),
    ...mounts,
  ].join('; ')
}

/**
 * The command a continued guest runs without a helper: continueScript as root through one sudo
 * (each sudo costs a noticeable part of a second under software emulation). Prints
 * `clock-failed` also when sudo failed.
 */
export function continueCommand(folders: readonly SyncedFolder[], shares: readonly number[], root: boolean): string {
  return `${root ? '' : 'sudo -n '}sh -c ${shellQuote(continueScript(folders, shares))} || echo clock-failed`
}

/** The 9p shares a continued guest mounts again: every folder that is not rsync. */
function sharesOf(folders: readonly SyncedFolder[]): number[] {
  return folders.flatMap((folder, index) => (folder.type === 'rsync' ? [] : [index]))
}

/**
 * Leaves a continue helper (continue-helper.ts) waiting in a running guest that is about to be
 * saved, so that the login after it continues needs no sudo. Best effort: a guest where it
 * cannot start one (no sudo, no mkfifo) continues through sudo as before. Not for a root login,
 * which needs no sudo anyway.
 */
export async function armContinuation(target: SshTarget, folders: readonly SyncedFolder[], run: RunInGuest = runInGuest): Promise<boolean> {
  if (target.user === 'root') return false
  const script = armScript(continueScript(folders, sharesOf(folders)), target.user)
  try {
    await run(target, `sudo -n sh -c ${shellQuote(script)}`, {timeoutMs: 30_000, connectTimeout: 5})
    return true
  } catch {
    return false
  }
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
  const shares = sharesOf(folders)
  const fallback = continueCommand(folders, shares, target.user === 'root')
  const run = options.run ?? runInGuest
  const login = (command: string) =>
    run(target, command, {
      timeoutMs: 60_000,
      connectTimeout: options.connectTimeout ?? 5,
      signal: options.signal,
      answer: {prompt: CLOCK_PROMPT, reply: () => clockAnswer(Date.now())},
    })
  // A helper left by the save serves the login without sudo; without one the login uses sudo at once.
  let {stdout} = await login(target.user === 'root' ? fallback : helperLoginCommand(continueScript(folders, shares), fallback))
  // One that did not answer: the host's time it was given is stale, so a new login asks again.
  if (stdout.split('\n').includes(HELPER_GONE)) ({stdout} = await login(fallback))
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
