import type {Stats} from 'node:fs'
import {chmod, lstat, mkdir, realpath} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {PROJECT_STATE_DIR, vmPaths} from './paths.js'

const uid = (): number => (typeof process.getuid === 'function' ? process.getuid() : 0)

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0')

function describe(stats: Stats): string {
  return `owner uid ${stats.uid}, mode ${octal(stats.mode)}`
}

function unsafe(dir: string, target: string, problem: string): UserError {
  const what = dir === target ? dir : `${dir} (which holds ${target})`
  return new UserError(`Refusing to use ${what}: ${problem}`, {
    code: 'UNSAFE_DIRECTORY',
    hint: `Remove it (rm -rf ${dir}) and run vm again, or point VM_RUNTIME_DIR at a directory only you can change. Files planted in a directory others control could make vm overwrite other files.`,
  })
}

/**
 * A directory that must be private to this user, such as the runtime directory where lease
 * files, lock files and QMP sockets live: another user who can write into it (or who owns
 * it, or a directory above it) could plant links there that make vm overwrite any file. It is
 * created with mode 0700; an existing one must be a real directory (not a symlink) owned by
 * this user and not writable by group or others, and every directory above it must be owned
 * by this user or root and not writable by others (a sticky /tmp is fine). A mode that only
 * lets others read or enter is narrowed to 0700.
 */
export async function ensurePrivateDir(dir: string): Promise<string> {
  const absolute = path.resolve(dir)
  const parent = path.dirname(absolute)
  await mkdir(parent, {recursive: true})
  const parentReal = await realpath(parent)
  await checkAncestors(parentReal, absolute)
  const real = path.join(parentReal, path.basename(absolute))
  try {
    await mkdir(real, {mode: 0o700})
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  const stats = await lstat(real)
  if (stats.isSymbolicLink()) throw unsafe(real, real, 'it is a symbolic link, not a directory of its own')
  if (!stats.isDirectory()) throw unsafe(real, real, 'it is not a directory')
  if (stats.uid !== uid()) throw unsafe(real, real, `it belongs to another user (${describe(stats)}; vm runs as uid ${uid()})`)
  if ((stats.mode & 0o022) !== 0) throw unsafe(real, real, `others can write into it (${describe(stats)})`)
  if ((stats.mode & 0o777) !== 0o700) await chmod(real, 0o700)
  return absolute
}

async function checkAncestors(from: string, target: string): Promise<void> {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const stats = await lstat(dir)
    const sticky = (stats.mode & 0o1000) !== 0
    if (stats.uid !== uid() && stats.uid !== 0)
      throw unsafe(dir, target, `it belongs to another user (${describe(stats)}; vm runs as uid ${uid()})`)
    if ((stats.mode & 0o022) !== 0 && !sticky) throw unsafe(dir, target, `others can write into it (${describe(stats)})`)
    if (dir === path.dirname(dir)) return
  }
}

/** The runtime directory (or `sub` in it), made private to this user first. */
export async function ensureRuntimeDir(sub?: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const runtime = await ensurePrivateDir(vmPaths(env).runtime)
  return sub === undefined ? runtime : ensurePrivateDir(path.join(runtime, sub))
}

/**
 * A directory of the project's state (.vm/ and what is below it): created with mode 0700,
 * every directory from .vm/ down to `dir` narrowed to 0700 when it is this user's. Machine
 * directories hold disks, keys and logs that nobody else should read.
 */
export async function ensureStateDir(dir: string): Promise<string> {
  const absolute = path.resolve(dir)
  await mkdir(absolute, {recursive: true, mode: 0o700})
  const parts = absolute.split(path.sep)
  const top = parts.lastIndexOf(PROJECT_STATE_DIR)
  const start = top < 1 ? parts.length - 1 : top
  for (let index = start; index < parts.length; index++) {
    const current = parts.slice(0, index + 1).join(path.sep) || path.sep
    const stats = await lstat(current)
    if (stats.isDirectory() && stats.uid === uid() && (stats.mode & 0o777) !== 0o700) await chmod(current, 0o700)
  }
  return absolute
}
