// A V8 code cache for the CommonJS part of the bundle (@oclif/core), as v8-compile-cache does:
// Node 20 has no compile cache of its own (module.enableCompileCache is Node >= 22.1), and
// parsing and compiling oclif at every start-up is a large part of `vm status`'s time.
import {constants, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, writeSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import vm from 'node:vm'

import {vmPaths} from '../state/paths.js'

/**
 * The last line scripts/bundle.js writes into every file read through here: the SHA-256 of the
 * file's text before it. Reading it costs nothing, where hashing the text at every start-up
 * needs node:crypto (which loads Node's streams) and hashing time.
 */
export const BUILD_HASH_PREFIX = '\n//# vmBuildHash='
const BUILD_HASH = /\n\/\/# vmBuildHash=([0-9a-f]{64})\n?$/

/** node:crypto, loaded only when used (see BUILD_HASH_PREFIX). */
const crypto = (): typeof import('node:crypto') => builtinRequire('node:crypto') as typeof import('node:crypto')

/** What identifies the text of `source`: the hash its build wrote into it, else its SHA-256. */
function sourceHash(source: string): string {
  return BUILD_HASH.exec(source.slice(-100))?.[1] ?? crypto().createHash('sha256').update(source).digest('hex')
}

/** FNV-1a (32 bits), for a few short strings: no node:crypto needed. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5
  for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193) >>> 0
  return hash.toString(16).padStart(8, '0')
}

/** Node's CommonJS wrapper, so the bundled file runs as `require(file)` would run it. */
const WRAPPER = ['(function (exports, require, module, __filename, __dirname, __vmImport) { ', '\n});']

/**
 * The import() the bundled file's `import(...)` calls are rewritten to (scripts/bundle.js). A
 * Node built-in comes from require(), as the same namespace (its names and `default`), so that
 * a CommonJS caller (vm ssh's fast path) never starts Node's ES module loader for it.
 */
const builtinRequire = createRequire(import.meta.url)
const vmImport = async (specifier: string): Promise<unknown> => {
  if (specifier.startsWith('node:')) {
    const builtin = builtinRequire(specifier) as object
    return {...builtin, default: builtin}
  }
  return import(specifier)
}

/**
 * Loads the CommonJS file `file` like require(), compiled from a code cache kept in vm's cache
 * dir (`code/NAME-HASH.v8`, HASH of the source, Node's version, arch and V8 flags, so a new
 * build or Node never reads a stale cache). With no usable cache the file is compiled as usual
 * and the cache written at exit, when it also holds the functions compiled while vm ran.
 * A cache that cannot be read or written only costs time. The file's `await import(...)` calls
 * must have been rewritten to `__vmImport(...)` (scripts/bundle.js does).
 *
 * A cache holds the functions the run that wrote it compiled (V8 compiles lazily), so a file
 * whose runs differ, such as the whole CLI (each command runs other code), keeps one cache per
 * `variant` (the command): `code/NAME~VARIANT-HASH.v8`.
 */
export function requireCached(file: string, variant?: string): unknown {
  const plainRequire = createRequire(file)
  // scripts/bundle.js writes these files in ASCII: latin1 reads them as utf8 would, only faster.
  const source = readFileSync(file, 'latin1')
  let cacheFile: string | undefined
  try {
    // The source, then what else makes V8's code differ (V8 also refuses a cache of another build of itself or flags).
    const key = sourceHash(source).slice(0, 16) + fnv1a(`${process.version}\0${process.arch}\0${process.execArgv.join(' ')}`)
    const name =
      variant === undefined ? path.basename(file) : `${path.basename(file)}~${/^[a-z][a-z0-9-]{0,39}$/.test(variant) ? variant : 'other'}`
    cacheFile = path.join(vmPaths().cache, 'code', `${name}-${key}.v8`)
  } catch {
    cacheFile = undefined // no cache dir (e.g. no home): compile without a cache
  }
  let cachedData: Buffer | undefined
  try {
    if (cacheFile !== undefined) cachedData = readFileSync(cacheFile)
  } catch {
    cachedData = undefined
  }
  const script = new vm.Script(WRAPPER[0] + source + WRAPPER[1], {filename: file, cachedData})
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
    const target = cacheFile
    process.once('exit', () => writeCache(target, () => script.createCachedData()))
  }
  const module = {exports: {} as unknown, filename: file, id: file, loaded: false}
  // Like the ES module bundle it replaces, the code sees no __filename or __dirname.
  ;(script.runInThisContext() as (...args: unknown[]) => void).call(
    module.exports,
    module.exports,
    plainRequire,
    module,
    undefined,
    undefined,
    vmImport,
  )
  module.loaded = true
  return module.exports
}

/** Writes the cache beside nothing half-written (temp file, O_EXCL|O_NOFOLLOW, rename); drops older caches of the file. */
function writeCache(cacheFile: string, data: () => Buffer): void {
  const dir = path.dirname(cacheFile)
  const prefix = `${path.basename(cacheFile).replace(/-[0-9a-f]+\.v8$/, '')}-`
  const temp = path.join(dir, `.${path.basename(cacheFile)}.${process.pid}.${crypto().randomBytes(6).toString('hex')}.tmp`)
  try {
    mkdirSync(dir, {recursive: true, mode: 0o700})
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    try {
      writeSync(fd, data())
    } finally {
      closeSync(fd)
    }
    renameSync(temp, cacheFile)
    for (const name of readdirSync(dir)) {
      if (name.startsWith(prefix) && name.endsWith('.v8') && name !== path.basename(cacheFile)) rmSync(path.join(dir, name), {force: true})
    }
  } catch {
    // A cache is an optimisation: a read-only or full cache dir only costs the next start-up.
    rmSync(temp, {force: true})
  }
}
