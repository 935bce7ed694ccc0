import path from 'node:path'

import {UserError, VmError} from '../errors/errors.js'
import {readLiveIndexSync, type IndexEntry} from '../state/global-index.js'
import {loadProject} from '../vmfile/index.js'
import {suggest} from '../vmfile/suggest.js'
import type {MachineConfig, ProjectConfig} from '../vmfile/types.js'

export type SelectMode = 'all' | 'autostart' | 'primary'

/** The machines named on the command line, all (or the autostart ones) when none is named. */
export function selectMachines(project: ProjectConfig, names: string[], mode: SelectMode): MachineConfig[] {
  if (names.length === 0) {
    if (mode === 'primary') return project.machines.filter((machine) => machine.name === project.primary)
    return mode === 'autostart' ? project.machines.filter((machine) => machine.autostart) : project.machines
  }
  return names.map((name) => {
    const machine = project.machines.find((candidate) => candidate.name === name)
    if (machine !== undefined) return machine
    const known = project.machines.map((candidate) => candidate.name)
    const guess = suggest(name, known)
    throw new UserError(`No machine named "${name}" in ${project.file}`, {
      code: 'NO_SUCH_MACHINE',
      hint: `${guess === undefined ? '' : `Did you mean "${guess}"? `}Machines: ${known.join(', ')}. Ids from "vm global-status" work too.`,
    })
  })
}

/** Shortest id prefix accepted: shorter ones are too easily a mistyped machine name. */
export const MIN_ID_PREFIX = 4

/**
 * The index entry `text` names as an id (a global-status id, or a unique prefix of one of at
 * least MIN_ID_PREFIX hex digits), or undefined when it names none. Two or more matches are
 * an error naming them.
 */
export function findMachineById(text: string, entries: readonly IndexEntry[]): IndexEntry | undefined {
  if (!new RegExp(`^[0-9a-f]{${MIN_ID_PREFIX},}$`, 'i').test(text)) return undefined
  const prefix = text.toLowerCase()
  const matches = entries.filter((entry) => entry.id.toLowerCase().startsWith(prefix))
  const exact = matches.find((entry) => entry.id.toLowerCase() === prefix)
  if (exact !== undefined || matches.length <= 1) return exact ?? matches[0]
  throw new UserError(`Machine id "${text}" is ambiguous: ${matches.length} machines have ids starting with it`, {
    code: 'AMBIGUOUS_MACHINE_ID',
    details: matches.map((entry) => `${entry.id}  ${entry.name}  ${entry.projectDir}`),
    hint: 'Give more characters of the id ("vm global-status" lists them).',
  })
}

export interface Selection {
  project: ProjectConfig
  machines: MachineConfig[]
}

/**
 * The machines a command acts on, as Vagrant finds them: each name is a machine of the project
 * around `cwd`, else the id (or a unique id prefix) of any machine on this host from the
 * global index, so `vm ssh ID` works from any directory. Every machine named must belong to
 * one project. With no names, the project around `cwd` and `mode` decide.
 */
export function resolveMachines(
  cwd: string,
  names: readonly string[],
  mode: SelectMode,
  index: () => readonly IndexEntry[] = () => readLiveIndexSync(),
): Selection {
  if (names.length === 0) {
    const project = loadProject(cwd)
    return {project, machines: selectMachines(project, [], mode)}
  }
  let local: ProjectConfig | undefined
  let localError: unknown
  try {
    local = loadProject(cwd)
  } catch (error) {
    // Not fatal yet: every name may be an id of a machine elsewhere.
    if (!(error instanceof VmError)) throw error
    localError = error
  }
  let entries: readonly IndexEntry[] | undefined
  const picks = names.map((name): {name: string; projectDir: string} => {
    if (local?.machines.some((machine) => machine.name === name)) return {name, projectDir: local.dir}
    entries ??= index()
    const entry = findMachineById(name, entries)
    if (entry !== undefined) return {name: entry.name, projectDir: entry.projectDir}
    if (local !== undefined) return {name, projectDir: local.dir}
    if ((localError as VmError).code !== 'VMFILE_NOT_FOUND') throw localError
    throw new UserError(`No machine "${name}": no Vmfile in ${path.resolve(cwd)} or above, and no machine id starts with "${name}"`, {
      code: 'NO_SUCH_MACHINE',
      hint: 'Run vm in the project directory (or pass --cwd), or use an id from "vm global-status".',
    })
  })
  const dirs = [...new Set(picks.map((pick) => path.resolve(pick.projectDir)))]
  if (dirs.length > 1) {
    throw new UserError(`The machines named belong to ${dirs.length} different projects`, {
      code: 'MIXED_PROJECTS',
      details: picks.map((pick) => `${pick.name}: ${pick.projectDir}`),
      hint: 'Name machines of one project at a time.',
    })
  }
  const project = local !== undefined && path.resolve(local.dir) === dirs[0] ? local : loadProject(dirs[0]!)
  return {
    project,
    machines: selectMachines(
      project,
      picks.map((pick) => pick.name),
      mode,
    ),
  }
}
