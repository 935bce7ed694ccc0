import type {CommandOutput} from '../command-output.js'
import {renderTable} from '../table.js'
import {globalStatus, type GlobalStatus} from '../../machine/global-status.js'
import type {FastRequest} from './args.js'
import {runFastCommand} from './run.js'

/** `vm global-status [--prune]` once its arguments are parsed (src/commands/global-status.ts and the fast path). */
export async function showGlobalStatus(output: CommandOutput, prune: boolean): Promise<GlobalStatus> {
  const result = await globalStatus(prune)
  if (result.machines.length === 0) output.say('No machines on this host.')
  if (result.machines.length > 0) {
    const rows = result.machines.map((m) => [
      m.id.slice(0, 7),
      m.name,
      m.state,
      m.host ?? '-',
      m.ssh === undefined ? '-' : `${m.ssh.host}:${m.ssh.port}`,
      m.projectDir,
    ])
    output.sayLines(renderTable(['ID', 'NAME', 'STATE', 'HOST', 'SSH', 'DIRECTORY'], rows))
    for (const m of result.machines) if (m.problem !== undefined) output.warn(`[${m.id.slice(0, 7)} ${m.name}] ${m.problem}`)
    output.say('')
    output.say('An id (or its first characters) names the machine from any directory: vm ssh ID, vm halt ID, vm status ID.')
  }
  if (result.gone.length > 0) {
    output.say(
      `${result.gone.length} stale ${result.gone.length === 1 ? 'entry' : 'entries'} (project gone)${prune ? ' removed' : '; --prune removes them'}.`,
    )
  }
  return result
}

/** The fast path's entry (dist/fast-global-status.cjs). */
export function runFast(request: FastRequest): Promise<number> {
  return runFastCommand(request, (output) => showGlobalStatus(output, request.booleans.prune === true))
}
