// vm cp: files and folders between the host and a machine, or between two machines, over the
// machines' SSH (src/ssh/exec.ts). A file goes as its bytes (`cat`), a folder as a tar stream of
// its contents; the bytes pass through vm, so two machines need not reach each other.
import {createReadStream, createWriteStream} from 'node:fs'
import {chmod, mkdir, stat} from 'node:fs/promises'
import path from 'node:path'
import {PassThrough, Writable, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {escapeControl} from '../cli/terminal-text.js'
import {stderrOf, UsageError, UserError} from '../errors/errors.js'
import {spawnFilter} from '../process/pipe.js'
import {guestStream, runInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
import {quoteForShell} from '../ssh/session.js'
import {pickMachine} from './fan-out.js'
import {runningTarget} from './ssh.js'

/** One side of a copy as written on the command line: a host path, or NAME:PATH in a machine ("" names the primary one). */
export interface CopySpec {
  machine?: string | undefined
  path: string
}

/** A machine name or id before the colon: no "/" (so ./a:b and /x/a:b stay host paths). */
const MACHINE_PREFIX = /^([A-Za-z0-9][A-Za-z0-9._-]*)?:(.*)$/s

/** Reads `[NAME:]PATH`. A path in the guest is relative to the login user's home; "~/" is that home. */
export function parseCopySpec(arg: string): CopySpec {
  const match = MACHINE_PREFIX.exec(arg)
  if (match === null) return {path: arg}
  const guestPath = match[2]!
  const home = guestPath === '~' ? '.' : guestPath.startsWith('~/') ? guestPath.slice(2) || '.' : guestPath
  return {machine: match[1] ?? '', path: home}
}

type Kind = 'file' | 'dir' | 'missing' | 'other'

/** Where a side of the copy is: the host, or a running machine reached over SSH. */
interface Side {
  label: string
  machine?: string
  target?: SshTarget
  path: string
}

function label(spec: CopySpec, machine?: string): string {
  return machine === undefined ? spec.path : `${machine}:${spec.path}`
}

async function kindOf(side: Side, file: string): Promise<{kind: Kind; mode: number}> {
  if (side.target === undefined) {
    try {
      const info = await stat(file)
      return {kind: info.isDirectory() ? 'dir' : info.isFile() ? 'file' : 'other', mode: info.mode & 0o777}
    } catch {
      return {kind: 'missing', mode: 0}
    }
  }
  const p = quoteForShell(file)
  const script = `if [ -d ${p} ]; then echo dir; elif [ -f ${p} ]; then echo file $(stat -L -c %a ${p} 2>/dev/null); elif [ -e ${p} ]; then echo other; else echo missing; fi`
  const {stdout} = await runInGuest(side.target, script, {timeoutMs: 60_000})
  const [kind, mode] = stdout.trim().split(' ')
  return {kind: (kind as Kind | undefined) ?? 'missing', mode: mode === undefined ? 0o644 : Number.parseInt(mode, 8) & 0o777}
}

const parentOf = (side: Side, file: string): string => (side.target === undefined ? path.dirname(file) : path.posix.dirname(file))
const joinOn = (side: Side, dir: string, name: string): string =>
  side.target === undefined ? path.join(dir, name) : path.posix.join(dir, name)

/** The source's name as the copy keeps it (the last part, "." for a folder such as "." or "/"). */
function baseName(file: string): string {
  const trimmed = file.replace(/\/+$/, '')
  return trimmed === '' ? '.' : path.posix.basename(trimmed)
}

/** Reads the source: a file's bytes, or a tar stream of a folder's contents. */
async function openSource(side: Side, file: string, kind: 'file' | 'dir'): Promise<Readable> {
  if (side.target === undefined) {
    if (kind === 'file') return createReadStream(file)
    const tar = await spawnFilter('tar', ['-C', file, '-cf', '-', '.'])
    tar.end()
    return tar
  }
  const command = kind === 'file' ? `cat -- ${quoteForShell(file)}` : `tar -C ${quoteForShell(file)} -cf - .`
  const stream = await guestStream(side.target, command)
  stream.end()
  return stream
}

/**
 * Writes the destination: the file (with the source's mode), or the folder, created when
 * missing and merged into when not. The streams to pipe into, in order (a filter's output,
 * if any, is thrown away).
 */
async function openDestination(side: Side, file: string, kind: 'file' | 'dir', mode: number): Promise<NodeJS.WritableStream[]> {
  const sink = (): Writable => new Writable({write: (_chunk, _encoding, next) => next()})
  if (side.target === undefined) {
    if (kind === 'file') return [createWriteStream(file, {mode})]
    await mkdir(file, {recursive: true})
    return [await spawnFilter('tar', ['-C', file, '--no-same-owner', '-xf', '-']), sink()]
  }
  const p = quoteForShell(file)
  const command = kind === 'file' ? `cat > ${p} && chmod ${mode.toString(8)} ${p}` : `mkdir -p ${p} && tar -C ${p} -xf -`
  return [await guestStream(side.target, command), sink()]
}

export interface CopyResult {
  from: {machine?: string; path: string}
  to: {machine?: string; path: string}
  kind: 'file' | 'directory'
  /** Bytes sent: the file's size, or the size of the folder's tar stream. */
  bytes: number
}

/**
 * Copies `source` to `destination` as cp does: into a folder that exists, else under the
 * destination's name (whose parent must exist); a folder only with `recursive`. Checks both
 * sides before copying anything.
 */
export async function copyFiles(cwd: string, source: CopySpec, destination: CopySpec, recursive: boolean): Promise<CopyResult> {
  if (source.machine === undefined && destination.machine === undefined) {
    throw new UsageError(`Neither ${escapeControl(source.path)} nor ${escapeControl(destination.path)} is in a machine`, {
      hint: 'Write the machine side as NAME:PATH (":PATH" for the primary machine), e.g. vm cp ./notes.txt web:/tmp/; use cp for copies on the host.',
    })
  }
  if (source.path === '' || destination.path === '')
    throw new UsageError('A path is missing after "NAME:"', {hint: 'e.g. vm cp web:/etc/hostname .'})
  const from = await resolveSide(cwd, source)
  const found = await kindOf(from, from.path)
  if (found.kind === 'missing' || found.kind === 'other') {
    throw new UserError(
      `${escapeControl(from.label)}: ${found.kind === 'missing' ? 'no such file or directory' : 'not a regular file or directory'}`,
      {
        code: 'COPY_SOURCE_MISSING',
        hint:
          from.target === undefined
            ? 'Check the path (relative paths start in the current directory).'
            : "Check the path (relative paths in a machine start in the login user's home).",
      },
    )
  }
  if (found.kind === 'dir' && !recursive)
    throw new UsageError(`${escapeControl(from.label)} is a directory`, {hint: 'Pass -r to copy a directory and everything in it.'})
  const to = await resolveSide(cwd, destination)
  const there = await kindOf(to, to.path)
  let finalPath = to.path
  if (there.kind === 'dir') finalPath = joinOn(to, to.path, baseName(from.path))
  else {
    if (to.path.endsWith('/'))
      throw new UserError(`${escapeControl(to.label)}: no such directory`, {
        code: 'COPY_DESTINATION_MISSING',
        hint: 'Create the directory first, or drop the trailing "/" to copy under that name.',
      })
    const parent = await kindOf(to, parentOf(to, to.path))
    if (parent.kind !== 'dir')
      throw new UserError(`${escapeControl(to.label)}: the directory it would go in does not exist`, {
        code: 'COPY_DESTINATION_MISSING',
        hint: 'Create the directory first (vm cp does not create parent directories).',
      })
    if (found.kind === 'dir' && there.kind === 'file')
      throw new UserError(`Cannot copy directory ${escapeControl(from.label)} over the file ${escapeControl(to.label)}`, {
        code: 'COPY_TYPE_CONFLICT',
        hint: 'Name a directory or a new path as the destination.',
      })
  }
  const after = there.kind === 'dir' ? (await kindOf(to, finalPath)).kind : there.kind
  if (found.kind === 'dir' && after === 'file')
    throw new UserError(`Cannot copy directory ${escapeControl(from.label)} over the file ${escapeControl(finalPath)}`, {
      code: 'COPY_TYPE_CONFLICT',
      hint: 'Remove that file or choose another destination.',
    })
  if (found.kind === 'file' && after === 'dir')
    throw new UserError(`Cannot copy file ${escapeControl(from.label)} over the directory ${escapeControl(finalPath)}`, {
      code: 'COPY_TYPE_CONFLICT',
      hint: 'Copy into that directory instead (name it as the destination).',
    })
  const kind = found.kind
  let bytes = 0
  const counter = new PassThrough()
  counter.on('data', (chunk: Buffer) => (bytes += chunk.length))
  try {
    const streams = [await openSource(from, from.path, kind), counter, ...(await openDestination(to, finalPath, kind, found.mode))]
    await pipeline(streams)
    if (kind === 'file' && to.target === undefined) await chmod(finalPath, found.mode)
  } catch (error) {
    const said = stderrOf(error).trim()
    throw new UserError(
      `Copying ${escapeControl(from.label)} to ${escapeControl(to.label)} failed${said === '' ? '' : `: ${said.split('\n').at(-1)}`}`,
      {
        code: 'COPY_FAILED',
        details: said === '' ? [error instanceof Error ? error.message : String(error)] : said.split('\n').slice(0, -1),
        hint: 'Check that the destination is writable by the login user (vm cp does not use sudo) and that the guest has tar.',
        cause: said === '' ? error : undefined,
      },
    )
  }
  return {
    from: {...(from.machine === undefined ? {} : {machine: from.machine}), path: from.path},
    to: {...(to.machine === undefined ? {} : {machine: to.machine}), path: finalPath},
    kind: kind === 'dir' ? 'directory' : 'file',
    bytes,
  }
}

async function resolveSide(cwd: string, spec: CopySpec): Promise<Side> {
  if (spec.machine === undefined) return {label: spec.path, path: path.resolve(cwd, spec.path)}
  const {project, name} = pickMachine(cwd, spec.machine === '' ? undefined : spec.machine)
  return {label: label(spec, name), machine: name, target: await runningTarget(project.dir, name), path: spec.path}
}
