import {access} from 'node:fs/promises'
import path from 'node:path'

import {UserError, VmError} from '../errors/errors.js'
import {runStreaming} from '../process/run.js'
import {renderProxyJump, type SshTarget} from '../ssh/options.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import type {Provisioner} from '../vmfile/types.js'
import {shellQuote, type ProvisionContext} from './shell.js'

type Ansible = Extract<Provisioner, {type: 'ansible'}>

/**
 * Quotes a value for the POSIX-style splitting Ansible applies twice: to an INI inventory
 * line, and then to ansible_ssh_common_args. Plain values stay as they are.
 */
function quoteForAnsible(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : shellQuote(value)
}

/**
 * An INI inventory with the machine's own SSH settings, for ansible-playbook; a jump host goes
 * into the ssh arguments, written as the machine's other ssh settings write it.
 */
export function renderInventory(host: string, target: SshTarget): string {
  const options = [
    `UserKnownHostsFile=${target.knownHostsFile}`,
    `HostKeyAlias=${target.hostKeyAlias}`,
    'StrictHostKeyChecking=yes',
    'IdentitiesOnly=yes',
    // The first key is ansible's private_key_file; ssh offers the others after it.
    ...target.identityFiles.slice(1).map((file) => `IdentityFile=${file}`),
    ...(target.jump === undefined ? [] : [`ProxyJump=${renderProxyJump(target.jump)}`]),
  ]
  const common = options.map((option) => `-o ${quoteForAnsible(option)}`).join(' ')
  const vars = [
    `ansible_host=${target.host}`,
    `ansible_port=${target.port}`,
    `ansible_user=${quoteForAnsible(target.user)}`,
    `ansible_ssh_private_key_file=${quoteForAnsible(target.identityFiles[0] ?? '')}`,
    `ansible_ssh_common_args=${shellQuote(common)}`,
  ]
  return `${host} ${vars.join(' ')}\n`
}

/** ansible-playbook's arguments: the generated inventory, the playbook, extra vars, become. */
export function ansibleArgs(provisioner: Ansible, inventory: string, playbook: string): string[] {
  const args = ['-i', inventory, playbook]
  if (Object.keys(provisioner.extraVars).length > 0) args.push('--extra-vars', JSON.stringify(provisioner.extraVars))
  if (provisioner.become) args.push('--become')
  return args
}

/**
 * Runs the playbook against the machine from the project directory (so the project's
 * ansible.cfg applies); resolves with ansible-playbook's exit status.
 */
export async function runAnsible(provisioner: Ansible, context: ProvisionContext & {machine: string; stateDir: string}): Promise<number> {
  const playbook = path.resolve(context.projectDir, provisioner.playbook)
  try {
    await access(playbook)
  } catch (error) {
    throw new UserError(`Provisioner ${provisioner.name}: the playbook ${playbook} does not exist`, {
      cause: error,
      hint: 'Check "playbook" in the Vmfile (relative to the Vmfile).',
    })
  }
  const inventory = path.join(context.stateDir, 'ansible-inventory')
  await writeFileAtomic(inventory, renderInventory(context.machine, context.target), {mode: 0o600})
  try {
    return await runStreaming('ansible-playbook', ansibleArgs(provisioner, inventory, playbook), {
      cwd: context.projectDir,
      onStdout: context.onStdout,
      onStderr: context.onStderr,
      env: {...process.env, ANSIBLE_HOST_KEY_CHECKING: 'True'},
    })
  } catch (error) {
    if (error instanceof VmError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new UserError(`Provisioner "${provisioner.name}" (ansible) needs ansible-playbook, which is not installed on this host`, {
        cause: error,
        code: 'ANSIBLE_MISSING',
        hint: 'Install Ansible (on Debian: apt-get install ansible-core) so that ansible-playbook is on PATH, or run the other provisioners with --provision-with.',
      })
    }
    throw error
  }
}
