import {UserError} from '../errors/errors.js'
import type {Provisioner} from '../vmfile/types.js'
import {runAnsible} from './ansible.js'
import {runFile} from './file.js'
import {runShell, type ProvisionContext} from './shell.js'

/**
 * Why provisioners run: the machine's first provisioning (until every provisioner succeeded
 * once), a later `vm up` (only run: always), or an explicit request (vm provision, --provision).
 */
export type ProvisionTrigger = 'first' | 'forced' | 'up'

/** Which provisioners run, in Vmfile order (top level first, then the machine's own). */
export function selectProvisioners(all: readonly Provisioner[], trigger: ProvisionTrigger, only?: readonly string[]): Provisioner[] {
  if (only !== undefined && only.length > 0) {
    const unknown = only.filter((name) => !all.some((p) => p.name === name || p.type === name))
    if (unknown.length > 0) {
      throw new UserError(`No provisioner named ${unknown.map((name) => `"${name}"`).join(', ')}`, {
        code: 'NO_SUCH_PROVISIONER',
        hint: `Provisioners: ${all.map((p) => p.name).join(', ') || '(none)'}.`,
      })
    }
    return all.filter((p) => only.includes(p.name) || only.includes(p.type))
  }
  return all.filter((p) => p.run === 'always' || (p.run === 'once' && trigger !== 'up'))
}

export interface ProvisionRun extends ProvisionContext {
  machine: string
  stateDir: string
}

/** Runs provisioners one after another; the first failure stops the rest and names itself. */
export async function runProvisioners(
  provisioners: readonly Provisioner[],
  context: ProvisionRun,
  onStart: (p: Provisioner) => void,
): Promise<string[]> {
  const ran: string[] = []
  for (const provisioner of provisioners) {
    onStart(provisioner)
    let status: number
    if (provisioner.type === 'shell') status = await runShell(provisioner, context)
    else if (provisioner.type === 'file') status = await runFile(provisioner, context)
    else status = await runAnsible(provisioner, context)
    if (status !== 0) {
      throw new UserError(
        `Provisioner "${provisioner.name}" (${provisioner.type}) of machine ${context.machine} failed with exit status ${status}`,
        {
          code: 'PROVISION_FAILED',
          hint: 'The provisioners after it did not run. Fix it and run "vm provision"; until all succeed, the next "vm up" runs them again.',
        },
      )
    }
    ran.push(provisioner.name)
  }
  return ran
}
