import path from 'node:path'

import {unreachableBoxWarnings} from '../box/locate.js'
import {UserError} from '../errors/errors.js'
import {applyDefaults} from './defaults.js'
import {hostWarnings} from './host-warnings.js'
import {locateVmfile, parseVmfile, readVmfile, VMFILE_NAME, type ParsedVmfile} from './load.js'
import {locateProblems} from './locate.js'
import type {ProjectConfig} from './types.js'
import {formatProblem, validateDocument, type Problem} from './validate.js'

/*
 * The Vmfile pipeline, in one place: find or read the file, check it (syntax, alias expansion,
 * schema, project rules), fill defaults. loadProject is the one entry: vm validate and every
 * command that reads the Vmfile go through it, so they accept, refuse and name files alike.
 */

/** How a Vmfile is named in messages: relative to where the user stands, like a compiler. */
export function displayName(file: string, cwd: string): string {
  const relative = path.relative(cwd, file)
  return relative === '' ? file : relative
}

/** Every problem of a parsed Vmfile: syntax first; schema checks only on valid YAML. */
export function checkVmfile(parsed: ParsedVmfile): Problem[] {
  if (parsed.syntaxProblems.length > 0) return parsed.syntaxProblems
  return validateDocument(parsed.doc, parsed.lines, undefined, {dir: path.dirname(path.resolve(parsed.file))})
}

/** The error raised when a command needs a valid Vmfile and this one is not. */
export function invalidVmfileError(problems: Problem[], fileName: string): UserError {
  return new UserError(`${fileName} has ${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}`, {
    code: 'VMFILE_INVALID',
    details: problems.map((problem) => formatProblem(problem, fileName)),
    hint: 'Fix the lines above; "vm validate" checks the file again.',
    data: {problems},
  })
}

/**
 * The error for what an engine cannot do of a project's Vmfile (its validate, which sees resolved
 * machines): each problem placed at its line and column in the project's Vmfile, as the schema's are.
 */
export function engineProblemsError(projectDir: string, problems: readonly Problem[]): UserError {
  let located = [...problems]
  try {
    located = locateProblems(readVmfile(path.join(projectDir, VMFILE_NAME)), problems)
  } catch {
    // The file went unreadable since it was loaded: the key paths still say where.
  }
  return invalidVmfileError(located, VMFILE_NAME)
}

/** Checks and defaults: everything after the file is read. */
function resolveParsed(parsed: ParsedVmfile, fileName: string): ProjectConfig {
  const problems = checkVmfile(parsed)
  if (problems.length > 0) throw invalidVmfileError(problems, fileName)
  // Alias expansion is bounded by checkVmfile (aliases.ts), so toJS needs no count of its own.
  return applyDefaults(parsed.doc.toJS({maxAliasCount: -1}), parsed.file)
}

/**
 * The project of the Vmfile at `file` (relative to `cwd`), or of the nearest Vmfile at or
 * above `cwd`: checked, with defaults filled. Throws one located error listing every problem,
 * the file named relative to `cwd`.
 */
export function loadProject(cwd: string, file?: string): ProjectConfig {
  const parsed = file === undefined ? locateVmfile(cwd) : readVmfile(path.resolve(cwd, file))
  return resolveParsed(parsed, displayName(parsed.file, cwd))
}

/** The same checks and defaults for Vmfile text in memory, `file` being where it would be. */
export function resolveVmfileText(text: string, file: string): ProjectConfig {
  return resolveParsed(parseVmfile(text, file), path.basename(file))
}

export interface ValidateResult {
  valid: true
  file: string
  machines: string[]
  primary: string
}

/**
 * vm validate: loadProject, then, as warnings, what this host cannot give the project and the
 * boxes `vm up` would not find (checked without the network; see box/locate.ts).
 */
export async function validateProject(
  cwd: string,
  file?: string,
  warn: (text: string) => void = () => {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<ValidateResult> {
  const config = loadProject(cwd, file)
  for (const warning of hostWarnings(config)) warn(warning)
  const boxes = config.machines.map((machine) => ({
    machine: machine.name,
    box: machine.box,
    boxVersion: machine.boxVersion,
    boxUrl: machine.boxUrl,
  }))
  for (const warning of await unreachableBoxWarnings(boxes, config.dir, env)) warn(warning)
  return {valid: true, file: config.file, machines: config.machines.map((machine) => machine.name), primary: config.primary}
}
