import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {writeNoCloudSeed, instanceIdFor} from '../cloud-init/seed.js'
import {cloudInitLogCommand, cloudInitWaitCommand, parseCloudInitStatus} from '../cloud-init/status.js'
import {UserError} from '../errors/errors.js'
import {generateKeyPair} from '../ssh/keys.js'
import {MachineFile, type MachinePaths} from '../state/machine-files.js'
import type {CloudInitConfig, MachineConfig} from '../vmfile/types.js'
import {finishBootStage, type Boot} from './boot-context.js'
import {machineHostname} from './hostname.js'
import type {MachineRecord} from './record.js'
import {loginUser, machineKeys, sshTarget} from './ssh-target.js'

/**
 * Machines of cloud-image boxes: a NoCloud seed written when the machine is created (the
 * machine's own key pair made first, so no insecure key is ever trusted), and the boot stage
 * that waits for cloud-init to finish.
 */

/** The host name a cloud-init machine gets (its seed's meta-data): the one every machine gets. */
export function cloudInitHostname(config: Pick<MachineConfig, 'hostname' | 'name'>): string {
  return machineHostname(config)
}

async function readPart(inline: string | undefined, file: string | undefined, key: string): Promise<string | undefined> {
  if (file === undefined) return inline
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new UserError(`Cannot read cloud_init.${key} ${file}: ${(error as Error).message}`, {
      code: 'CLOUD_INIT_FILE',
      hint: `Check the path in the Vmfile's cloud_init.${key} (relative to the Vmfile's directory).`,
    })
  }
}

/** The user's parts of the seed, from the Vmfile's `cloud_init:` (inline or files). */
export async function userParts(config: CloudInitConfig | undefined): Promise<{userData?: string; networkConfig?: string}> {
  const userData = await readPart(config?.userData, config?.userDataFile, 'user_data_file')
  const networkConfig = await readPart(config?.networkConfig, config?.networkConfigFile, 'network_config_file')
  return {...(userData === undefined ? {} : {userData}), ...(networkConfig === undefined ? {} : {networkConfig})}
}

/**
 * Makes the machine's key pair and writes its NoCloud seed into the machine's directory; returns
 * what the record keeps (the seed's file name, relative to the machine's directory).
 */
export async function writeMachineSeed(record: MachineRecord, paths: MachinePaths): Promise<{seed: string}> {
  const parts = await userParts(record.config.cloudInit)
  const publicKey = await generateKeyPair(paths.privateKey, `vmfile ${record.name} ${record.id}`)
  await writeNoCloudSeed(path.join(paths.dir, MachineFile.cloudInitSeed), {
    instanceId: instanceIdFor(record),
    hostname: cloudInitHostname(record.config),
    user: loginUser(record),
    publicKey,
    ...parts,
  })
  return {seed: MachineFile.cloudInitSeed}
}

/** The last lines of cloud-init's output log, or a line saying why there are none. */
async function logTail(boot: Boot, signal: AbortSignal | undefined): Promise<string[]> {
  const target = sshTarget(boot.record, boot.paths, machineKeys(boot.record, boot.paths), 'yes')
  try {
    const {stdout} = await boot.guest.runInGuest(target, cloudInitLogCommand(), {connectTimeout: 5, timeoutMs: 30_000, signal})
    return stdout.trimEnd().split('\n')
  } catch (error) {
    return [`(the log could not be read: ${(error as Error).message.split('\n')[0]})`]
  }
}

/**
 * Stage "cloud-init": waits until cloud-init has finished in the guest (`cloud-init status
 * --wait --long`). A failure is a UserError with cloud-init's verdict and the tail of its log;
 * the stage stays pending, so the next `vm up` checks again.
 */
export async function waitForCloudInit(boot: Boot): Promise<void> {
  if (!(boot.record.pending ?? []).includes('cloud-init')) return
  const signal = boot.options.interrupt?.signal
  const {record} = boot
  boot.events.info('waiting for cloud-init to finish')
  const target = sshTarget(record, boot.paths, machineKeys(record, boot.paths), 'yes')
  const result = await boot.guest.runInGuest(target, cloudInitWaitCommand(), {
    connectTimeout: 5,
    timeoutMs: Math.max(60, record.config.bootTimeout) * 1000,
    okCodes: [0, 1, 2],
    signal,
  })
  const verdict = parseCloudInitStatus(result.stdout, result.code)
  if (!verdict.ok) {
    const log = await logTail(boot, signal)
    throw new UserError(`cloud-init failed in machine ${record.name}: ${verdict.summary}`, {
      code: 'CLOUD_INIT_FAILED',
      details: [
        ...(verdict.finished ? [] : ['(cloud-init was still running when it reported the error)']),
        '/var/log/cloud-init-output.log:',
        ...log,
      ],
      hint: `The machine is running: look around with "vm ssh ${record.name}" and "vm up ${record.name}" checks again. cloud-init applies user-data once per machine: after fixing the Vmfile's cloud_init, run "vm destroy -f ${record.name}" and "vm up".`,
    })
  }
  for (const warning of verdict.warnings) boot.events.warn(`cloud-init: ${warning}`)
  await finishBootStage(boot, 'cloud-init')
}
