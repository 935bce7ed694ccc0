import path from 'node:path'

import {checkVmfile, invalidVmfileError, type Problem} from '../vmfile/index.js'
import {applyDefaults} from '../vmfile/defaults.js'
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
  const problems: Problem[] = checkVmfile(parsed)
  const name = displayName(parsed.file, cwd)
  if (problems.length > 0) throw invalidVmfileError(problems, name)
  const config = applyDefaults(parsed.doc.toJS({maxAliasCount: 100}), parsed.file)
  return {valid: true, file: parsed.file, machines: config.machines.map((machine) => machine.name), primary: config.primary}
}
