import path from 'node:path'

import {resolveParsedVmfile} from '../vmfile/index.js'
import {locateVmfile, readVmfile} from '../vmfile/load.js'

export interface ValidateResult {
  valid: true
  file: string
  machines: string[]
  primary: string
}

/** How a Vmfile is named in messages: relative to where the user stands, like a compiler. */
export function displayName(file: string, cwd: string): string {
  const relative = path.relative(cwd, file)
  return relative === '' ? file : relative
}

/**
 * Validates the Vmfile at `file`, or the project's (found from `cwd`). Throws a located,
 * every-problem-at-once error when it is invalid.
 */
export function validateProject(cwd: string, file?: string): ValidateResult {
  const parsed = file === undefined ? locateVmfile(cwd) : readVmfile(path.resolve(cwd, file))
  const config = resolveParsedVmfile(parsed, displayName(parsed.file, cwd))
  return {valid: true, file: parsed.file, machines: config.machines.map((machine) => machine.name), primary: config.primary}
}
