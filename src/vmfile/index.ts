import path from 'node:path'

import {UserError} from '../errors/errors.js'
import {applyDefaults} from './defaults.js'
import {locateVmfile, parseVmfile, type ParsedVmfile} from './load.js'
import type {ProjectConfig} from './types.js'
import {formatProblem, validateDocument, type Problem} from './validate.js'

export {findVmfile, locateVmfile, parseVmfile, readVmfile, VMFILE_NAME} from './load.js'
export {formatProblem, validateDocument, type Problem} from './validate.js'
export {applyDefaults} from './defaults.js'
export type * from './types.js'

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
 * The one way from a parsed Vmfile to a project: every check (syntax, alias expansion, schema,
 * project rules), then defaults. vm validate and every command that reads the Vmfile use it.
 */
export function resolveParsedVmfile(parsed: ParsedVmfile, displayName = 'Vmfile'): ProjectConfig {
  const problems = checkVmfile(parsed)
  if (problems.length > 0) throw invalidVmfileError(problems, displayName)
  // Alias expansion is bounded by checkVmfile (aliases.ts), so toJS needs no count of its own.
  return applyDefaults(parsed.doc.toJS({maxAliasCount: -1}), parsed.file)
}

/** Loads, validates and resolves a Vmfile from text (throws a located error when invalid). */
export function resolveVmfileText(text: string, file: string, displayName = 'Vmfile'): ProjectConfig {
  return resolveParsedVmfile(parseVmfile(text, file), displayName)
}

/** Finds the project's Vmfile from `cwd`, validates it and fills defaults. */
export function loadProject(cwd: string): ProjectConfig {
  return resolveParsedVmfile(locateVmfile(cwd))
}
