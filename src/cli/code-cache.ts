// A V8 code cache for the CommonJS part of the bundle (@oclif/core), as v8-compile-cache does:
// Node 20 has no compile cache of its own (module.enableCompileCache is Node >= 22.1), and
// parsing and compiling oclif at every start-up is a large part of `vm status`'s time.
import {createHash, randomBytes} from 'node:crypto'
import {constants, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, writeSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import vm from 'node:vm'

import {vmPaths} from '../state/paths.js'

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
 * dir (`code/NAME-HASH.v8`, HASH over the source, Node's version, arch and V8 flags, so a new
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
    const key = createHash('sha256')
      .update(source)
      .update(`\0${process.version}\0${process.arch}\0${process.execArgv.join(' ')}`)
      .digest('hex')
      .slice(0, 24)
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
  const temp = path.join(dir, `.${path.basename(cacheFile)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
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
