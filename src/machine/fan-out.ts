// The machine verbs over a project: its Vmfile loaded, the machines a command names (or all,
// or the primary) picked, and up, halt, destroy, status or provision run on each.
import {UserError} from '../errors/errors.js'
import {hostWarnings} from '../vmfile/index.js'
import type {ProjectConfig} from '../vmfile/types.js'
import type {DestroyResult, HaltOptions, HaltResult} from './halt.js'
import {inspectMachine, type MachineStatus} from './inspect.js'
import {resolveMachines} from './select.js'
import {firstBootUnfinished} from './stages.js'
import type {MachineEvents} from './events.js'
import type {UpOptions, UpResult} from './up.js'

// up, halt and provision (with the engine and the box code) are imported when a verb runs them:
// `vm status` and `vm ssh` load only what they use (start-up time; see bench/startup).
const halting = () => import('./halt.js')
const booting = () => import('./up.js')
const provisioning = () => import('./provision.js')

export type EventsFor = (machine: string) => MachineEvents

export interface ProjectRun<T> {
  project: ProjectConfig
  results: T[]
  failures: Array<{name: string; error: unknown}>
}

/** Runs `task` for each machine, in parallel or one after another; one failure orphans nothing. */
async function forEachMachine<T>(
  names: string[],
  parallel: boolean,
  task: (name: string) => Promise<T>,
): Promise<{results: T[]; failures: Array<{name: string; error: unknown}>}> {
  const results: T[] = []
  const failures: Array<{name: string; error: unknown}> = []
  const run = async (name: string): Promise<void> => {
    try {
      results.push(await task(name))
    } catch (error) {
      failures.push({name, error})
    }
  }
  if (parallel) await Promise.all(names.map(run))
  else for (const name of names) await run(name)
  return {results, failures}
}

/** When some machines failed: one error naming each, with each cause's message. */
export function failuresError(verb: string, failures: Array<{name: string; error: unknown}>): UserError | undefined {
  if (failures.length === 0) return undefined
  if (failures.length === 1 && failures[0]!.error instanceof Error) return failures[0]!.error as UserError
  return new UserError(`${verb} failed for ${failures.map((failure) => failure.name).join(', ')}`, {
    code: 'MACHINES_FAILED',
    details: failures.map(
      (failure) => `${failure.name}: ${failure.error instanceof Error ? failure.error.message : String(failure.error)}`,
    ),
  })
}

export async function upProject(
  cwd: string,
  names: string[],
  parallel: boolean,
  events: EventsFor,
  options: UpOptions = {},
): Promise<ProjectRun<UpResult>> {
  const {project, machines} = resolveMachines(cwd, names, 'autostart')
  for (const machine of machines) for (const warning of hostWarnings({...project, machines: [machine]})) events(machine.name).warn(warning)
  const {upMachine} = await booting()
  const {results, failures} = await forEachMachine(
    machines.map((machine) => machine.name),
    parallel,
    (name) =>
      upMachine(
        project.dir,
        machines.find((machine) => machine.name === name)!,
        events(name),
        options,
      ),
  )
  return {project, results, failures}
}

export async function haltProject(
  cwd: string,
  names: string[],
  graceMs: number,
  events?: EventsFor,
  options: HaltOptions = {},
): Promise<ProjectRun<HaltResult>> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  const {haltMachine} = await halting()
  const {results, failures} = await forEachMachine(
    machines.map((machine) => machine.name),
    true,
    (name) => haltMachine(project.dir, name, graceMs, events?.(name), options),
  )
  return {project, results, failures}
}

export async function destroyProject(cwd: string, names: string[]): Promise<ProjectRun<DestroyResult>> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  const {destroyMachine} = await halting()
  const {results, failures} = await forEachMachine(
    machines.map((machine) => machine.name),
    true,
    (name) => destroyMachine(project.dir, name),
  )
  return {project, results, failures}
}

export async function statusProject(cwd: string, names: string[]): Promise<{project: ProjectConfig; machines: MachineStatus[]}> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  return {
    project,
    machines: await Promise.all(
      // A machine whose engine cannot be asked (an unreachable libvirt host) is listed as unknown, with the reason.
      machines.map(async (machine) => (await inspectMachine(project.dir, machine.name, {engineFailure: 'report'})).status),
    ),
  }
}

/** The one machine a command such as ssh acts on: the named one, else the primary. */
export function pickMachine(cwd: string, name: string | undefined): {project: ProjectConfig; name: string} {
  const {project, machines} = resolveMachines(cwd, name === undefined ? [] : [name], 'primary')
  const [machine] = machines
  return {project, name: machine!.name}
}

/** vm reload: halt, then boot with the Vmfile's current settings (the box stays pinned). */
export async function reloadProject(
  cwd: string,
  names: string[],
  parallel: boolean,
  graceMs: number,
  events: EventsFor,
  options: UpOptions = {},
): Promise<ProjectRun<UpResult>> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  const [{haltMachine}, {upMachine}] = await Promise.all([halting(), booting()])
  const {results, failures} = await forEachMachine(
    machines.map((machine) => machine.name),
    parallel,
    async (name) => {
      await haltMachine(project.dir, name, graceMs, events(name))
      return upMachine(
        project.dir,
        machines.find((machine) => machine.name === name)!,
        events(name),
        {...options, applyConfig: true},
      )
    },
  )
  return {project, results, failures}
}

/** vm provision: run the provisioners of running machines (all, or --provision-with). */
export async function provisionProject(
  cwd: string,
  names: string[],
  only: string[] | undefined,
  events: EventsFor,
): Promise<ProjectRun<{name: string; ran: string[]}>> {
  const {project, machines} = resolveMachines(cwd, names, 'all')
  const {provisionRecord} = await provisioning()
  const {results, failures} = await forEachMachine(
    machines.map((machine) => machine.name),
    false,
    async (name) => {
      const config = machines.find((machine) => machine.name === name)!
      const {status, record, unreadable} = await inspectMachine(project.dir, name)
      if (unreadable !== undefined) throw unreadable
      if (record === undefined || status.state !== 'running') {
        throw new UserError(`Machine ${name} is not running (state: ${status.state})`, {
          code: 'NOT_RUNNING',
          hint: `Run "vm up ${name}" first.`,
        })
      }
      if (firstBootUnfinished(record)) {
        throw new UserError(`Machine ${name}'s first boot did not finish`, {
          code: 'BOOT_UNFINISHED',
          hint: `Run "vm up ${name}" to finish it.`,
        })
      }
      const {ran} = await provisionRecord(project.dir, record, config.provision, 'forced', only, events(name))
      return {name, ran}
    },
  )
  return {project, results, failures}
}
