import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {packageRoot} from '../state/package-root.js'
import {DEFAULT_SYNCED_FOLDER, defaultOf, VMFILE_NAME} from '../vmfile/index.js'

/** The box `vm init` puts in a new Vmfile when none is named. */
export const DEFAULT_BOX = 'vmfile/debian-12'

export interface InitOptions {
  box?: string | undefined
  boxVersion?: string | undefined
  minimal?: boolean
}

/** Renders templates/Vmfile.hbs; defaults come from the schema so the two cannot drift. */
export async function renderVmfile(options: InitOptions = {}): Promise<string> {
  // Loaded on demand: handlebars is large and only init needs it.
  const {default: Handlebars} = await import('handlebars')
  const template = Handlebars.compile(readFileSync(path.join(packageRoot(), 'templates', 'Vmfile.hbs'), 'utf8'), {
    noEscape: true,
    strict: true,
  })
  // {{default "ssh.port"}} shows what the schema declares (and fails for a key without one).
  const helpers = {default: (keyPath: string) => defaultOf(keyPath)}
  return template(
    {
      box: options.box ?? DEFAULT_BOX,
      boxVersion: options.boxVersion ?? '',
      minimal: options.minimal === true,
      hostname: 'dev',
      syncedFolder: DEFAULT_SYNCED_FOLDER,
    },
    {helpers},
  )
}

export interface InitResult {
  /** Absolute path written, or "-" for stdout. */
  path: string
  box: string
  minimal: boolean
  content: string
}

/** Writes a new Vmfile; refuses to replace one unless `force`. */
export async function initVmfile(dir: string, output: string | undefined, options: InitOptions & {force?: boolean}): Promise<InitResult> {
  const content = await renderVmfile(options)
  const box = options.box ?? DEFAULT_BOX
  const minimal = options.minimal === true
  if (output === '-') return {path: '-', box, minimal, content}
  const target = path.resolve(dir, output ?? VMFILE_NAME)
  if (existsSync(target) && options.force !== true) {
    throw new UserError(`${target} already exists`, {
      code: 'VMFILE_EXISTS',
      hint: 'Pass --force to replace it, or --output - to print the new one.',
    })
  }
  try {
    writeFileSync(target, content)
  } catch (error) {
    throw new UserError(`Cannot write ${target}`, {cause: error, hint: 'Check that the directory exists and is writable.'})
  }
  return {path: target, box, minimal, content}
}
