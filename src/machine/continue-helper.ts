import {createHash} from 'node:crypto'

import {shellQuote} from '../provision/shell.js'
import {CLOCK_PROMPT} from './guest-clock.js'

/**
 * The continue helper: a root shell left waiting in the guest by the save of a running machine
 * (vm suspend, vm snapshot save), so that the login after the guest continues needs no sudo (a
 * noticeable part of a second under software emulation, on the path vm resume and vm snapshot
 * restore wait for). The save, which a fraction of a second does not delay noticeably, starts it
 * through sudo; it makes two FIFOs in a directory of root's and blocks on them. The login after
 * the guest continues checks that the helper is the one that was started (its pid, that pid's
 * start time and the boot id: not a helper of another boot, nor a recycled pid), and that it
 * runs the very commands this login wants (a key of them: not those of another vm version or
 * another set of synced folders). Then it hands the helper the host's time over one FIFO and
 * relays what the helper prints on the other. The helper serves one login and removes itself.
 *
 * Whatever is wrong (no helper, a stale one, one that does not answer within a few seconds) the
 * login says so and vm runs the commands through sudo instead, as without a helper.
 */

/** Where the helper's FIFOs and its identity live: root's, on the guest's /run (gone with a reboot). */
export const HELPER_DIR = '/run/vm-continue'

/** What the login prints when the helper cannot serve it: vm then runs the commands through sudo. */
export const HELPER_GONE = 'vm-helper-gone'

/** Seconds the login waits for the helper to take its request before it gives up on it. */
export const HELPER_WAIT_SECONDS = 5

/**
 * The key of the commands a helper runs: a login uses a helper only when it would run the same
 * (same synced folders, same version of the commands).
 */
export function helperKey(script: string): string {
  return createHash('sha256').update(`vm-continue-1\n${script}`).digest('hex').slice(0, 16)
}

/**
 * Shell text that sets `start` to the start time (in clock ticks after boot, /proc/PID/stat's
 * 22nd field) of process `pid` and $1 to its state, and fails when there is no such process;
 * builtins only (each started program costs a moment under emulation). The command name, in
 * parentheses, may hold spaces: the fields are counted after it.
 */
function startTimeOf(pid: string): string {
  return `read -r stat </proc/${pid}/stat && stat=\${stat##*) } && set -- $stat && start=\${20}`
}

/**
 * Shell text that sets pid, start, boot and key from the helper's identity file and checks that
 * this process runs (not a zombie: one that ended, and no parent collected yet) with that start
 * time in this boot.
 */
function helperAlive(dir: string): string {
  const id = shellQuote(`${dir}/id`)
  return (
    `read -r pid want boot key <${id} && read -r now </proc/sys/kernel/random/boot_id && [ "$now" = "$boot" ] && ` +
    `case "$pid" in *[!0-9]* | '') false ;; esac && ${startTimeOf('$pid')} && [ "$start" = "$want" ] && [ "$1" != Z ]`
  )
}

/**
 * The helper itself, run as root: it writes its identity (pid, start time, boot id, key), waits
 * for a login to open its output FIFO, drops its identity (it serves that login only), runs
 * `script` (which asks for the host's time with CLOCK_PROMPT, as the sudo path's does) with the
 * FIFOs as its stdin and stdout, and removes its directory. It ignores the hangup of the session
 * that started it.
 */
export function helperScript(script: string, key: string, dir = HELPER_DIR): string {
  const q = (name: string) => shellQuote(`${dir}/${name}`)
  return [
    'trap "" HUP',
    'pid=$$',
    startTimeOf('$pid'),
    'read -r boot </proc/sys/kernel/random/boot_id',
    `umask 022`,
    `echo "$pid $start $boot ${key}" >${q('id.new')}`,
    `mv -f ${q('id.new')} ${q('id')}`,
    `exec >${q('out')}`,
    `rm -f ${q('id')}`,
    `exec <${q('in')}`,
    `{ ${script}; } 2>/dev/null`,
    'exec >/dev/null </dev/null',
    `rm -rf ${shellQuote(dir)}`,
  ].join('\n')
}

/**
 * The commands, run as root, that start a helper for `user` (the login's user, who alone may use
 * its FIFOs): an earlier helper still waiting (a live snapshot's, whose machine ran on) is ended
 * first; the helper runs in a session of its own (no terminal of sudo's to hang up). They return
 * once the helper has written its identity, so that a save right after holds a helper ready.
 */
export function armScript(script: string, user: string, dir = HELPER_DIR): string {
  const key = helperKey(script)
  const d = shellQuote(dir)
  const q = (name: string) => shellQuote(`${dir}/${name}`)
  const helper = shellQuote(helperScript(script, key, dir))
  return [
    'set -e',
    `if ${helperAlive(dir)}; then kill "$pid" 2>/dev/null || true; fi`,
    `rm -rf ${d}`,
    `umask 077`,
    `mkdir -m 0711 ${d}`,
    `mkfifo -m 0600 ${q('in')} ${q('out')}`,
    `chown ${shellQuote(user)} ${q('in')} ${q('out')}`,
    'if command -v setsid >/dev/null 2>&1; then set -- setsid; else set --; fi',
    `"$@" sh -c ${helper} </dev/null >/dev/null 2>&1 &`,
    // The identity appears within a moment; sleep takes fractions in busybox and coreutils.
    `n=0; while [ ! -e ${q('id')} ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done`,
    `[ -e ${q('id')} ]`,
  ].join('\n')
}

/**
 * The login after the guest continued, as the login's user: when a live helper that runs
 * `script` waits, it opens the helper's input (read-write, which never blocks), waits up to
 * `waitSeconds` for the helper to open its output and ask for the time, asks the host for it
 * (CLOCK_PROMPT), passes it on and relays the helper's report; otherwise it runs `fallback`.
 * A helper that does not take the request in time, or a FIFO that cannot be opened, makes it
 * print HELPER_GONE instead (the host's time already asked for is stale by then: vm runs the
 * fallback in a new login).
 */
export function helperLoginCommand(script: string, fallback: string, dir = HELPER_DIR, waitSeconds = HELPER_WAIT_SECONDS): string {
  const key = helperKey(script)
  const q = (name: string) => shellQuote(`${dir}/${name}`)
  const body = [
    `if { ${helperAlive(dir)} && [ "$key" = ${key} ]; } 2>/dev/null; then`,
    '  line=',
    `  if { command exec 3<>${q('in')}; } 2>/dev/null; then`,
    // The watchdog opens the output itself when the helper has not: the login reads its word instead.
    `    (sleep ${waitSeconds}; echo ${HELPER_GONE} >${q('out')}) </dev/null >/dev/null 2>&1 &`,
    '    w=$!',
    `    if { command exec 4<${q('out')}; } 2>/dev/null; then kill $w 2>/dev/null; read -r line <&4; else kill $w 2>/dev/null; fi`,
    '  fi',
    `  if [ "$line" = ${CLOCK_PROMPT} ]; then`,
    `    echo ${CLOCK_PROMPT}; read -r answer; echo "$answer" >&3; exec 3>&-`,
    '    while read -r line <&4; do echo "$line"; done',
    `  else echo ${HELPER_GONE}; fi`,
    'else',
    `  ${fallback}`,
    'fi',
  ].join('\n')
  return `sh -c ${shellQuote(body)}`
}
