import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

import {UsageError, UserError, VmError} from '../errors/errors.js'
import {processCommandLine} from '../state/process-check.js'
import {vmPaths} from '../state/paths.js'
import {unpackStream} from './archive.js'
import {CHECKSUM_TYPES, parseCatalog, selectFromCatalog, toUrl, type Catalog} from './catalog.js'
import {discardPartial, openSource, RestartDownload, type DownloadProgress, type HttpOptions} from './download.js'
import {fetchCatalog} from './fetch.js'
import {copyBoxFolder, readBoxFolder, resolveBoxFolder} from './folder.js'
import {acquireFileLock} from '../state/file-lock.js'
import {isShortName, lookupShortName} from './registry.js'
import {isOciSource, parseOciReference} from './oci/reference.js'
import {loadAuthorizations} from './credentials.js'
import {pullOciBox, type OciSourceRecord} from './oci/pull.js'
import {replaceStoredBox} from './replace.js'
import {hostArchitecture, installBox, listBoxes, readStoredBox, SOURCE_FILE, type BoxKey, type BoxSource, type StoredBox} from './store.js'
import {describeBareImage, sealBox, verifyUnpackedBox, type DiskFacts} from './verify.js'
import {fsUserError, isFsError, onUserData} from './fs-errors.js'
import {declaredBound, parseByteSize, UnpackBudget, type UnpackLimits} from './unpack-budget.js'
import {BOX_NAME_RULE, FIELD_RULES, fieldProblem, isValidBoxName, isValidBoxVersion, isValidToken, quoteValue} from './fields.js'

export interface AddBoxOptions {
  /** A path, URL, catalog URL/path, or short name (org/box) looked up in the registries. */
  source: string
  cwd?: string | undefined
  name?: string | undefined
  /** A version constraint; applies to catalogs and short names. */
  constraint?: string | undefined
  provider?: string | undefined
  architecture?: string | undefined
  checksum?: string | undefined
  checksumType?: string | undefined
  /** Replace a stored box of the same name, version, architecture and provider. */
  force?: boolean | undefined
  /** Discard a partial download instead of resuming it. */
  clean?: boolean | undefined
  insecure?: boolean | undefined
  /** Path of a CA bundle (PEM) for HTTPS. */
  cacert?: string | undefined
  token?: string | undefined
  signal?: AbortSignal | undefined
  onProgress?: ((progress: DownloadProgress) => void) | undefined
  /** Short status lines: lookups, waiting for another vm, verifying. */
  onStatus?: ((message: string) => void) | undefined
  env?: NodeJS.ProcessEnv | undefined
  retryDelayMs?: number | undefined
  /** Retries per download after a transient failure (default 5). */
  retries?: number | undefined
  /** Bounds on unpacking; the ceiling defaults to VM_BOX_MAX_UNPACKED or 256 GiB. */
  limits?: UnpackLimits | undefined
}

export interface AddBoxResult {
  box: StoredBox
  /** True when the box was already stored and nothing was downloaded. */
  alreadyPresent: boolean
  url: string
  catalogUrl: string | undefined
  bytes: number
  /** From an OCI registry: blob bytes downloaded, and bytes taken from stored boxes instead. */
  received?: number | undefined
  reused?: number | undefined
}

/** Failures that say the bytes themselves are bad (rather than the network or the disk). */
const CONTENT_ERRORS = new Set(['BOX_INVALID', 'BOX_UNSAFE', 'BOX_TOO_BIG', 'BOX_CORRUPT'])

/** Every part of a store key must pass its pattern: they name directories in the store. */
function checkKey(key: BoxKey): void {
  const problems = (['name', 'version', 'architecture', 'provider'] as const)
    .map((field) => fieldProblem(field, key[field], FIELD_RULES[field]))
    .filter((problem) => problem !== undefined)
  if (problems.length === 0) return
  throw new UserError(`Cannot store the box as ${quoteValue(key.name)} ${quoteValue(key.version)}: ${problems[0]}`, {
    code: problems[0]!.startsWith('"name"') ? 'BOX_NAME' : 'BOX_INVALID',
    details: problems.slice(1),
    hint: 'Box names look like org/box or box (letters, digits, . _ -); versions like 1.2.3. Pass --name to choose another name.',
  })
}

/** The version a bare disk image is stored under: --box-version when it is a plain version, else 0. */
export function bareImageVersion(constraint: string | undefined): string {
  if (constraint === undefined) return '0'
  const version = constraint.trim().replace(/^=\s*/, '')
  if (isValidBoxVersion(version)) return version
  throw new UsageError(`--box-version ${quoteValue(constraint)} cannot version a bare disk image`, {
    hint: 'A bare image has no catalog to choose from: give the version to store it under, such as --box-version 1.0.0 (0 when absent).',
  })
}

/** Checks the names given on the command line before anything is downloaded. */
function checkOptions(options: AddBoxOptions): void {
  if (options.name !== undefined && !isValidBoxName(options.name))
    throw new UsageError(`--name ${quoteValue(options.name)} is not a usable box name`, {hint: `Use ${BOX_NAME_RULE}.`})
  if (options.architecture !== undefined && !isValidToken(options.architecture))
    throw new UsageError(`--architecture ${quoteValue(options.architecture)} is not an architecture name`, {
      hint: 'Use a name such as amd64 or arm64.',
    })
}

/** Removes `.tmp-<pid>-*` directories left in the store by vm processes that died. */
async function removeStaleTemps(root: string): Promise<void> {
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    const pid = Number(/^\.tmp-(\d+)-/.exec(entry)?.[1])
    if (pid > 0 && pid !== process.pid && processCommandLine(pid) === undefined)
      await rm(path.join(root, entry), {recursive: true, force: true})
  }
}

interface Plan {
  url: string
  catalog: Catalog | undefined
  /** Known up front when a catalog chose the box. */
  key: Partial<BoxKey>
  checksumType: string | undefined
  checksum: string | undefined
  /** From an OCI registry: the manifest and recipe, kept for updates and chunk reuse. */
  oci?: OciSourceRecord | undefined
}

/** Adds a box to the store (see AddBoxOptions); safe to call from `vm up` when a box is missing. */
export async function addBox(options: AddBoxOptions): Promise<AddBoxResult> {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  checkOptions(options)
  const cacert = options.cacert === undefined ? undefined : path.resolve(cwd, options.cacert)
  const http: HttpOptions = {
    insecure: options.insecure,
    cacert: cacert === undefined ? undefined : await onUserData('read the CA bundle', cacert, () => readFile(cacert, 'utf8')),
    token: options.token ?? env.VM_BOX_TOKEN,
    authorizations: await loadAuthorizations(env),
    signal: options.signal,
  }
  const checksumType = options.checksumType?.toLowerCase()
  if (checksumType !== undefined && !CHECKSUM_TYPES.includes(checksumType as never)) {
    throw new UsageError(`Unknown checksum type "${options.checksumType}"`, {hint: `Use one of ${CHECKSUM_TYPES.join(', ')}.`})
  }
  if (options.checksum !== undefined && checksumType === undefined)
    throw new UsageError('--checksum needs --checksum-type', {hint: 'For example --checksum-type sha256.'})
  try {
    if (isOciSource(options.source)) return await addFromOci(options, http, env)
    let catalog: Catalog | undefined
    if (isShortName(options.source) && !existsSync(path.resolve(cwd, options.source))) {
      options.onStatus?.(`Looking up ${options.source} in the box registries`)
      catalog = await lookupShortName(options.source, {...http, env})
    } else {
      const url = toUrl(options.source, cwd)
      const local = /^file:/i.test(url) ? fileURLToPath(url) : undefined
      if (local !== undefined && (await stat(local).catch(() => undefined))?.isDirectory() === true)
        return await addFromFolder(local, options, env)
      if (!/^(https?|file):/i.test(url))
        throw new UsageError(`Cannot add ${quoteValue(options.source)}: vm reads boxes from http(s) URLs and files`, {
          hint: 'Give an http(s) URL, a path, or a box name such as org/box.',
        })
      if (/\.json$/i.test(new URL(url).pathname)) catalog = await fetchCatalog(url, {...http, env})
      else
        return await addFromUrl(
          {url, catalog: undefined, key: {}, checksumType, checksum: options.checksum?.toLowerCase()},
          options,
          http,
          env,
        )
    }
    return await addFromCatalog(catalog, options, http, env)
  } catch (error) {
    if (options.signal?.aborted) {
      throw new VmError('Interrupted: nothing was added to the box store', {
        code: 'INTERRUPTED',
        exit: 'interrupted',
        hint: 'Run the same command again to resume the download.',
        cause: error,
      })
    }
    // Whatever filesystem step failed, the user gets the path and what it means.
    if (isFsError(error)) throw fsUserError(error, 'use')
    throw error
  }
}

/** Adds an unpacked box folder (see folder.ts): the same checks and install as an archive. */
async function addFromFolder(folder: string, options: AddBoxOptions, env: NodeJS.ProcessEnv): Promise<AddBoxResult> {
  const paths = vmPaths(env)
  const found = await resolveBoxFolder(folder, {
    constraint: options.constraint,
    provider: options.provider,
    architecture: options.architecture ?? hostArchitecture(),
  })
  if (found.dir !== folder) options.onStatus?.(`Taking the box in ${found.dir}`)
  const metadata = await readBoxFolder(found.dir)
  const plan: Plan = {url: pathToFileURL(found.dir).href, catalog: undefined, key: {}, checksumType: undefined, checksum: undefined}
  // The same lock as a download of the same source: two adds of one folder never race to install it.
  const cacheKey = createHash('sha256').update(`${plan.url}\0:`).digest('hex').slice(0, 32)
  const release = await acquireFileLock(path.join(paths.downloads, `${cacheKey}.lock`), {
    signal: options.signal,
    onWait: (pid) => options.onStatus?.(`Waiting for vm process ${pid}, which is adding the same box`),
  })
  try {
    await mkdir(paths.boxes, {recursive: true})
    await removeStaleTemps(paths.boxes)
    const temp = await mkdtemp(path.join(paths.boxes, `.tmp-${process.pid}-`))
    let bytes: number
    try {
      // The bounds an archive is unpacked within: free space, the declared size, the ceiling.
      const budget = await UnpackBudget.start(temp, found.dir, {maxBytes: parseByteSize(env.VM_BOX_MAX_UNPACKED), ...options.limits})
      const bound = declaredBound(metadata)
      if (bound !== undefined) budget.declare(bound.limit, bound.reason)
      bytes = await copyBoxFolder(found.dir, temp, metadata, (size) => budget.take(size))
    } catch (error) {
      await rm(temp, {recursive: true, force: true, maxRetries: 3})
      throw error
    }
    return await installUnpacked(temp, 'box', plan, found.layout, options, env, bytes)
  } finally {
    await release()
  }
}

/** Pulls a box from an OCI registry (see oci/pull.ts) and installs it like any other add. */
async function addFromOci(options: AddBoxOptions, http: HttpOptions, env: NodeJS.ProcessEnv): Promise<AddBoxResult> {
  const ref = parseOciReference(options.source)
  const pulled = await pullOciBox(ref, {
    name: options.name,
    force: options.force,
    clean: options.clean,
    insecure: http.insecure,
    cacert: http.cacert,
    signal: options.signal,
    env,
    retries: options.retries,
    retryDelayMs: options.retryDelayMs,
    limits: options.limits,
    onStatus: options.onStatus,
    onProgress: options.onProgress,
  })
  const extra = {received: pulled.received, reused: pulled.reused}
  if (pulled.present !== undefined)
    return {box: pulled.present, alreadyPresent: true, url: pulled.reference, catalogUrl: undefined, bytes: 0, ...extra}
  try {
    try {
      checkKey(pulled.key)
    } catch (error) {
      await rm(pulled.dir!, {recursive: true, force: true})
      throw error
    }
    const plan: Plan = {
      url: pulled.reference,
      catalog: undefined,
      key: pulled.key,
      checksumType: 'sha256',
      checksum: pulled.record.digest.replace(/^sha256:/, ''),
      oci: pulled.record,
    }
    const added = await installUnpacked(pulled.dir!, 'box', plan, {}, options, env, pulled.size, pulled.diskFacts)
    return {...added, ...extra}
  } finally {
    await pulled.release()
  }
}

function addFromCatalog(catalog: Catalog, options: AddBoxOptions, http: HttpOptions, env: NodeJS.ProcessEnv): Promise<AddBoxResult> {
  const architecture = options.architecture ?? hostArchitecture()
  const selection = selectFromCatalog(catalog, {constraint: options.constraint, provider: options.provider, architecture})
  const explicit = options.checksum !== undefined
  return addFromUrl(
    {
      url: selection.provider.url,
      catalog,
      key: {
        name: options.name ?? catalog.name,
        version: selection.version,
        architecture: selection.architecture,
        provider: selection.provider.name,
      },
      checksumType: explicit ? options.checksumType?.toLowerCase() : selection.provider.checksumType,
      checksum: explicit ? options.checksum?.toLowerCase() : selection.provider.checksum,
    },
    options,
    http,
    env,
  )
}

async function addFromUrl(plan: Plan, options: AddBoxOptions, http: HttpOptions, env: NodeJS.ProcessEnv): Promise<AddBoxResult> {
  const paths = vmPaths(env)
  const known = plan.key.name !== undefined && plan.key.version !== undefined ? (plan.key as BoxKey) : undefined
  if (known !== undefined) checkKey(known)
  if (plan.checksumType !== undefined && !CHECKSUM_TYPES.includes(plan.checksumType as never)) {
    throw new UserError(`The catalog names an unknown checksum type "${plan.checksumType}"`, {code: 'CATALOG_INVALID'})
  }
  const present = async (): Promise<StoredBox | undefined> => {
    if (options.force === true) return undefined
    if (known !== undefined) return readStoredBox(known, paths.boxes)
    if (options.name === undefined) return undefined
    return (await listBoxes(paths.boxes)).find((box) => box.name === options.name && box.source?.url === plan.url)
  }
  const existing = await present()
  if (existing !== undefined) return {box: existing, alreadyPresent: true, url: plan.url, catalogUrl: plan.catalog?.url, bytes: 0}
  const cacheKey = createHash('sha256')
    .update(`${plan.url}\0${plan.checksumType ?? ''}:${plan.checksum ?? ''}`)
    .digest('hex')
    .slice(0, 32)
  const source = {url: plan.url, cacheDir: paths.downloads, cacheKey}
  const release = await acquireFileLock(path.join(paths.downloads, `${cacheKey}.lock`), {
    signal: options.signal,
    onWait: (pid) => options.onStatus?.(`Waiting for vm process ${pid}, which is adding the same box`),
  })
  await mkdir(paths.boxes, {recursive: true})
  let temp: string | undefined
  try {
    const again = await present()
    if (again !== undefined) return {box: again, alreadyPresent: true, url: plan.url, catalogUrl: plan.catalog?.url, bytes: 0}
    if (options.clean === true) await discardPartial(source)
    await removeStaleTemps(paths.boxes)
    const checksumType = plan.checksumType ?? 'sha256'
    const limits: UnpackLimits = {maxBytes: parseByteSize(env.VM_BOX_MAX_UNPACKED), ...options.limits}
    let result
    for (let attempt = 0; ; attempt++) {
      temp = await mkdtemp(path.join(paths.boxes, `.tmp-${process.pid}-`))
      try {
        const bytes = openSource({
          ...source,
          ...http,
          onProgress: options.onProgress,
          retryDelayMs: options.retryDelayMs,
          retries: options.retries,
        })
        result = await unpackStream(bytes, {dir: temp, checksumType, where: plan.url, signal: options.signal, limits})
        break
      } catch (error) {
        // Bytes that are not a usable box are not worth resuming.
        if (error instanceof UserError && CONTENT_ERRORS.has(error.code)) await discardPartial(source).catch(() => undefined)
        if (!(error instanceof RestartDownload) || attempt >= 2) throw error
        options.onStatus?.(`${error.message}; starting the download over`)
        await discardPartial(source)
        await rm(temp, {recursive: true, force: true})
      }
    }
    if (plan.checksum !== undefined && result.digest !== plan.checksum) {
      await discardPartial(source)
      throw new UserError(`Checksum mismatch for ${plan.url}`, {
        code: 'CHECKSUM_MISMATCH',
        details: [`expected ${checksumType} ${plan.checksum}`, `got      ${checksumType} ${result.digest}`],
        hint: 'The download was corrupted or the box changed since its catalog was written; run the command again, or ask the publisher.',
      })
    }
    if (result.kind === 'catalog') {
      if (plan.catalog !== undefined)
        throw new UserError(`The catalog ${plan.catalog.url} points at another catalog (${plan.url})`, {code: 'CATALOG_INVALID'})
      await release()
      return await addFromCatalog(parseCatalog(result.text ?? '', plan.url), options, http, env)
    }
    const added = await installUnpacked(temp, result.kind === 'image' ? 'image' : 'box', plan, {}, options, env, result.bytes)
    temp = undefined
    if (!added.alreadyPresent) await discardPartial(source)
    return added
  } finally {
    if (temp !== undefined) await rm(temp, {recursive: true, force: true, maxRetries: 3})
    await release()
  }
}

/**
 * The last steps of every add, from an archive, an image or a folder: verify what is in
 * `temp` (an unpacked box in the store's root), decide its key, record its source, seal it and
 * install it atomically. `temp` is consumed: installed or removed.
 */
async function installUnpacked(
  unpacked: string,
  kind: 'box' | 'image',
  plan: Plan,
  layout: Partial<BoxKey>,
  options: AddBoxOptions,
  env: NodeJS.ProcessEnv,
  bytes: number,
  diskFacts?: ReadonlyMap<string, DiskFacts>,
): Promise<AddBoxResult> {
  const paths = vmPaths(env)
  let temp: string | undefined = unpacked
  try {
    options.onStatus?.('Verifying the box')
    let metadata
    if (kind === 'image') {
      if (options.name === undefined) {
        throw new UsageError(`${plan.url} is a bare disk image: give the box a name with --name`, {
          hint: 'For example: vm box add disk.qcow2 --name my/box',
        })
      }
      metadata = await describeBareImage(temp, 'box.img', plan.url, options.name, plan.key.version ?? bareImageVersion(options.constraint))
    } else {
      metadata = await verifyUnpackedBox(temp, plan.url, diskFacts)
    }
    const name = plan.key.name ?? options.name ?? metadata.name ?? layout.name
    if (name === undefined)
      throw new UsageError(`The box at ${plan.url} does not name itself: give it a name with --name`, {
        hint: 'For example: vm box add URL --name my/box',
      })
    const key: BoxKey = {
      name,
      version: plan.key.version ?? metadata.version ?? layout.version ?? '0',
      architecture: plan.key.architecture ?? metadata.architecture ?? layout.architecture ?? options.architecture ?? hostArchitecture(),
      provider: plan.key.provider ?? metadata.provider,
    }
    checkKey(key)
    const stored = options.force === true ? undefined : await readStoredBox(key, paths.boxes)
    if (stored !== undefined) return {box: stored, alreadyPresent: true, url: plan.url, catalogUrl: plan.catalog?.url, bytes}
    const record: BoxSource = {
      url: plan.url,
      catalogUrl: plan.catalog?.url,
      checksumType: plan.checksumType,
      checksum: plan.checksum,
      addedAt: new Date().toISOString(),
      ...(plan.oci === undefined ? {} : {oci: plan.oci}),
    }
    await writeFile(path.join(temp, SOURCE_FILE), `${JSON.stringify(record, null, 2)}\n`)
    await sealBox(temp, metadata)
    // --force replaces a stored box, but never one under machines' overlays (see replace.ts).
    if (options.force === true) await replaceStoredBox(temp, key, paths.boxes, env)
    else await installBox(temp, key, false, paths.boxes)
    temp = undefined
    const box = await readStoredBox(key, paths.boxes)
    if (box === undefined) throw new VmError(`The box ${key.name} ${key.version} vanished from the store right after it was added`)
    return {box, alreadyPresent: false, url: plan.url, catalogUrl: plan.catalog?.url, bytes}
  } finally {
    if (temp !== undefined) await rm(temp, {recursive: true, force: true, maxRetries: 3})
  }
}
