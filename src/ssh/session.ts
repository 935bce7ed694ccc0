import path from 'node:path'

/**
 * What `vm ssh` asks the guest's login shell to run: the user's command or an interactive
 * login shell, in a given directory or in the home directory. Pure, so it can be tested
 * without a guest.
 */

/** Single-quoted for a POSIX shell: the guest's shell reads it back as exactly `value`. */
export function quoteForShell(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`
}

/** A folder shared with the guest: the host directory and where the guest sees it. */
export interface SharedFolder {
  host: string
  guest: string
}

/**
 * The guest directory that matches the host directory `cwd`: the guest side of the innermost
 * shared folder that holds `cwd`, plus the rest of the path. Undefined outside every folder.
 * Both host paths should be real paths (symbolic links resolved) for the comparison to hold.
 */
export function matchingGuestDir(folders: readonly SharedFolder[], cwd: string): string | undefined {
  let best: {depth: number; dir: string} | undefined
  for (const folder of folders) {
    const relative = path.relative(folder.host, cwd)
    if (relative.startsWith('..') || path.isAbsolute(relative)) continue
    const depth = folder.host.length
    if (best !== undefined && best.depth >= depth) continue
    const parts = relative === '' ? [] : relative.split(path.sep)
    best = {depth, dir: path.posix.join(folder.guest, ...parts)}
  }
  return best?.dir
}

export interface SessionRequest {
  /** The user's command (-c); none: an interactive login shell. */
  command?: string | undefined
  /** Run there; a directory that cannot be entered fails the session (--workdir). */
  workdir?: string | undefined
  /** Start there when it can be entered, else in the home directory (the folder vm ssh was started in). */
  landing?: string | undefined
}

/**
 * The command line ssh sends (undefined: none, so sshd starts the login shell itself). A
 * directory turns an interactive session into `cd DIR; exec $SHELL -l`, which needs a terminal
 * asked for explicitly (`needsTty`): ssh allocates one by itself only when no command is sent.
 */
export function sessionCommand(request: SessionRequest): {command: string | undefined; needsTty: boolean} {
  const shell = 'exec "${SHELL:-/bin/sh}" -l'
  if (request.workdir !== undefined) {
    const cd = `cd -- ${quoteForShell(request.workdir)} || exit 1`
    return request.command === undefined
      ? {command: `${cd}; ${shell}`, needsTty: true}
      : {command: `${cd}\n${request.command}`, needsTty: false}
  }
  if (request.command !== undefined) return {command: request.command, needsTty: false}
  if (request.landing !== undefined) return {command: `cd -- ${quoteForShell(request.landing)} 2>/dev/null; ${shell}`, needsTty: true}
  return {command: undefined, needsTty: false}
}
