import {writeFile} from 'node:fs/promises'
import path from 'node:path'

import {runStreaming} from '../process/run.js'
import type {SshTarget} from '../ssh/options.js'
import type {Provisioner} from '../vmfile/types.js'
import type {ProvisionContext} from './shell.js'

type Ansible = Extract<Provisioner, {type: 'ansible'}>

/** An INI inventory with the machine's own SSH settings, for ansible-playbook. */
export function renderInventory(host: string, target: SshTarget): string {
  const common = `-o UserKnownHostsFile=${target.knownHostsFile} -o HostKeyAlias=${target.hostKeyAlias} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes`
  return [
    `${host} ansible_host=${target.host} ansible_port=${target.port} ansible_user=${target.user} ansible_ssh_private_key_file=${target.identityFile} ansible_ssh_common_args='${common}'`,
    '',
  ].join('\n')
}

export async function runAnsible(provisioner: Ansible, context: ProvisionContext & {machine: string; stateDir: string}): Promise<number> {
  const inventory = path.join(context.stateDir, 'ansible-inventory')
  await writeFile(inventory, renderInventory(context.machine, context.target))
  const args = ['-i', inventory, path.resolve(context.projectDir, provisioner.playbook)]
  if (Object.keys(provisioner.extraVars).length > 0) args.push('--extra-vars', JSON.stringify(provisioner.extraVars))
  if (provisioner.become) args.push('--become')
  return runStreaming('ansible-playbook', args, {
    onStdout: context.onStdout,
    onStderr: context.onStderr,
    env: {...process.env, ANSIBLE_HOST_KEY_CHECKING: 'True'},
  })
}
