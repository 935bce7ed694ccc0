import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {isatty} from 'node:tty'

import {writeFileAtomic} from '../state/atomic-file.js'
import {vmPaths} from '../state/paths.js'
import {ensureRuntimeDir} from '../state/private-dir.js'
import {liveMaster} from '../ssh/master.js'
import {findVmfile} from '../vmfile/find.js'
import {escapeControl} from './terminal-text.js'

/**
 * `vm ssh [NAME] [-c COMMAND]` without oclif and without the Vmfile's code, when the machine's
 * shared connection (ssh/master.ts) answers: then the command costs Node's start-up plus one
 * session over that connection, less than a new ssh connection (its key exchange) costs.
 *
 * It runs the same service as the full command (machine/ssh.ts: the record must be readable,
 * the engine running, the first boot finished; ssh gets the pinned host key, the machine's
 * key, the control path in the private runtime directory) and only skips what needs no
 * re-doing: oclif, and parsing the Vmfile when it has not changed since a run made the same
 * choice of machine. Anything else (an option it does not know, no live connection, a
 * changed or invalid Vmfile, a machine id, an unreadable record) returns undefined before
 * ssh starts, and the full command runs and says what is wrong. VM_DEBUG names the path taken.
 */

/** What the fast path understands of `vm ssh`'s arguments. */
export interface FastSshRequest {
  /** The machine named; none: the primary one. */
  name?: string
  /** -c/--command; none: an interactive shell. */
  command?: string
}

/**
 * The arguments after `ssh` when they are one of the forms the fast path runs (at most one
 * machine name, at most one -c/--command whose value is not empty and does not look like an
 * option); undefined for anything else (--, -t, --workdir, --json, --cwd, --help, several
 * names ...), which the full command handles.
 */
export function parseFastSsh(argv: readonly string[]): FastSshRequest | undefined {
  const request: FastSshRequest = {}
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    let value: string | undefined
    if (arg === '-c' || arg === '--command') value = argv[++index]
    else if (arg.startsWith('--command=')) value = arg.slice('--command='.length)
    else if (arg.startsWith('-') || arg === '' || request.name !== undefined) return undefined
    else {
      request.name = arg
      continue
    }
    if (request.command !== undefined || value === undefined || value === '' || value.startsWith('-')) return undefined
    request.command = value
  }
  return request
}

/** The choice of machines a Vmfile gives: where its project is, its machines, the primary one. */
export interface ProjectSelection {
  dir: string
  primary: string
  machines: string[]
}

/** A selection made by loading the Vmfile, kept with the exact text it was made from. */
interface SelectionMemo extends ProjectSelection {
  version: 1
  cwd: string
  vmfile: string
  text: string
}

/** Below the (private) runtime directory: one remembered selection per working directory. */
export const SELECTION_SUBDIR = 'select'

function memoFile(cwd: string): string {
  const key = createHash('sha256').update(cwd).digest('hex').slice(0, 32)
  return path.join(vmPaths().runtime, SELECTION_SUBDIR, `${key}.json`)
}

function readMemo(file: string): SelectionMemo | undefined {
  try {
    const memo = JSON.parse(readFileSync(file, 'utf8')) as SelectionMemo
    return memo.version === 1 && Array.isArray(memo.machines) ? memo : undefined
  } catch {
    return undefined
  }
}

/**
 * The machines of the project around `cwd`, as the full command would find them. Remembered
 * per directory with the Vmfile's exact text: when that file is still the nearest Vmfile and
 * its text is unchanged, loading it again would give the same machines, so it is not loaded.
 * Otherwise it is loaded (a Vmfile with problems throws) and the result remembered.
 */
export async function projectSelection(cwd: string): Promise<ProjectSelection | undefined> {
  const vmfile = findVmfile(cwd)
  if (vmfile === undefined) return undefined
  const text = readFileSync(vmfile, 'utf8')
  // The memo is trusted only in a directory nobody else can write to (throws otherwise).
  const dir = await ensureRuntimeDir(SELECTION_SUBDIR)
  const file = path.join(dir, path.basename(memoFile(cwd)))
  const memo = readMemo(file)
  if (memo !== undefined && memo.cwd === cwd && memo.vmfile === vmfile && memo.text === text) return memo
  const {loadProject} = await import('../vmfile/index.js')
  const project = loadProject(cwd)
  if (project.file !== vmfile || readFileSync(vmfile, 'utf8') !== text) return undefined
  const selection: ProjectSelection = {
    dir: project.dir,
    primary: project.primary,
    machines: project.machines.map((machine) => machine.name),
  }
  const fresh: SelectionMemo = {version: 1, cwd, vmfile, text, ...selection}
  await writeFileAtomic(file, `${JSON.stringify(fresh)}\n`).catch(() => undefined)
  return selection
}

function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  const value = env.VM_DEBUG?.toLowerCase()
  return value !== undefined && value !== '' && value !== '0' && value !== 'false' && value !== 'no'
}

/**
 * Runs `vm ssh` (arguments after "ssh") over the machine's live shared connection and resolves
 * with ssh's exit status, or resolves undefined, having started nothing, when the full command
 * must run instead.
 */
export async function runFastSsh(argv: readonly string[]): Promise<number | undefined> {
  const debug = debugEnabled(process.env)
  const notTaken = (why: string): undefined => {
    if (debug) process.stderr.write(`vm: ssh fast path not taken (${escapeControl(why)}): running the full command\n`)
    return undefined
  }
  const request = parseFastSsh(argv)
  if (request === undefined) return notTaken('arguments it does not handle')
  try {
    const cwd = process.cwd()
    const selection = await projectSelection(cwd)
    if (selection === undefined) return notTaken('no Vmfile here, or it changed while read')
    const name = request.name ?? selection.primary
    if (!selection.machines.includes(name)) return notTaken(`no machine named ${JSON.stringify(name)} in the Vmfile`)
    const {sshIntoMachineWhen} = await import('../machine/ssh.js')
    // isatty(0) is what process.stdin.isTTY says, without creating the stdin stream (a few ms).
    const session = {command: request.command, cwd, tty: isatty(0)}
    const code = await sshIntoMachineWhen(selection.dir, name, session, async (target) => {
      const socket = await liveMaster(target)
      if (socket !== undefined && debug) process.stderr.write(`vm: ssh fast path: over the shared connection ${escapeControl(socket)}\n`)
      return socket !== undefined
    })
    // It rejects only before ssh starts (ssh missing ...): then the full command runs too.
    return code ?? notTaken('no live shared connection')
  } catch (error) {
    return notTaken(error instanceof Error ? error.message.split('\n')[0]! : String(error))
  }
}
