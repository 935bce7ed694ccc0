import {totalmem} from 'node:os'
import path from 'node:path'

import {formatSizeMiB} from '../vmfile/units.js'
import {resolveParsedVmfile, type ProjectConfig} from '../vmfile/index.js'
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
export function validateProject(cwd: string, file?: string, warn: (text: string) => void = () => {}): ValidateResult {
  const parsed = file === undefined ? locateVmfile(cwd) : readVmfile(path.resolve(cwd, file))
  const config = resolveParsedVmfile(parsed, displayName(parsed.file, cwd))
  for (const warning of hostWarnings(config)) warn(warning)
  return {valid: true, file: parsed.file, machines: config.machines.map((machine) => machine.name), primary: config.primary}
}

/**
 * What this host cannot give the project, as warnings (the Vmfile may be meant for another
 * host): a machine with more memory than the host has would swap or be killed.
 */
export function hostWarnings(config: ProjectConfig, hostMiB = Math.floor(totalmem() / 1024 / 1024)): string[] {
  return config.machines
    .filter((machine) => machine.memory > hostMiB)
    .map(
      (machine) =>
        `machine ${machine.name} asks for ${formatSizeMiB(machine.memory)} of memory, more than this host has (${formatSizeMiB(hostMiB)}); it may fail to start or be killed`,
    )
}
