import {UserError} from '../errors/errors.js'
import {suggest} from '../vmfile/suggest.js'
import type {MachineConfig, ProjectConfig} from '../vmfile/types.js'

/** The machines named on the command line, all (or the autostart ones) when none is named. */
export function selectMachines(project: ProjectConfig, names: string[], mode: 'all' | 'autostart' | 'primary'): MachineConfig[] {
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
      hint: `${guess === undefined ? '' : `Did you mean "${guess}"? `}Machines: ${known.join(', ')}.`,
    })
  })
}
