import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'

import {UserError, VmError} from '../errors/errors.js'
import {generateKeyPair, insecurePrivateKey} from '../ssh/keys.js'
import {driverMachine, finishBootStage, type Boot} from './boot-context.js'
import type {MachineRecord} from './record.js'
import {sshTarget} from './ssh-target.js'

/**
 * Stage "connect": waits until the guest answers on the endpoint its driver returned (the host
 * key recorded on first contact), then replaces the insecure key the box trusts with a key
 * pair made for this machine.
 */
export async function connectToGuest(boot: Boot): Promise<number | undefined> {
  const {paths, guest} = boot
  const signal = boot.options.interrupt?.signal
  const ssh = (): NonNullable<MachineRecord['ssh']> => boot.record.ssh!
  let key = paths.privateKey
  let insecureCopy: string | undefined
  let bootMs: number | undefined
  if (!ssh().keyReplaced) insecureCopy = key = await insecurePrivateKey(paths.dir)
  try {
    try {
      bootMs = await guest.waitForSsh({
        target: sshTarget(boot.record, paths, key, ssh().keyReplaced && !firstCloudInitContact(boot) ? 'yes' : 'accept-new'),
        timeoutMs: boot.record.config.bootTimeout * 1000,
        watch: boot.driver.bootWatch(driverMachine(boot)),
        onProgress: boot.events.progress,
        signal,
      })
    } catch (error) {
      // An interrupted key stage may have replaced the key in the guest but not in the record.
      const refused = error instanceof VmError && error.code === 'SSH_KEY_REFUSED'
      if (!refused || insecureCopy === undefined || !(await machineKeyWorks(boot, signal))) throw error
      boot.record = {...boot.record, ssh: {...ssh(), keyReplaced: true}}
    }
    await finishBootStage(boot, 'ssh')
    if (!ssh().keyReplaced) await replaceInsecureKey(boot, key, signal)
    boot.record = {...boot.record, ssh: {...ssh(), keyReplaced: true}}
    await finishBootStage(boot, 'key')
  } finally {
    if (insecureCopy !== undefined) await rm(insecureCopy, {force: true})
  }
  return bootMs
}

/** A cloud-init machine logs in with its own key from the first boot, when no host key is recorded yet. */
function firstCloudInitContact(boot: Boot): boolean {
  return boot.record.cloudInit !== undefined && !existsSync(boot.paths.knownHosts)
}

/** Whether the guest accepts the machine's own key (the key stage may have finished in the guest only). */
async function machineKeyWorks(boot: Boot, signal?: AbortSignal): Promise<boolean> {
  if (!existsSync(boot.paths.privateKey)) return false
  return boot.guest.guestAcceptsKey(sshTarget(boot.record, boot.paths, boot.paths.privateKey, 'yes'), signal)
}

/**
 * Replaces the insecure key the box trusts with a key pair made for this machine; synced to
 * the guest's disk at once, so a machine killed right after its first boot still takes the key.
 */
async function replaceInsecureKey(boot: Boot, insecureKey: string, signal?: AbortSignal): Promise<void> {
  const {record, paths} = boot
  const publicKey = await generateKeyPair(paths.privateKey, `vmfile ${record.name} ${record.id}`)
  const script = `umask 077 && mkdir -p ~/.ssh && printf '%s\\n' '${publicKey}' > ~/.ssh/authorized_keys.new && mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys && sync`
  await boot.guest.runInGuest(sshTarget(record, paths, insecureKey, 'yes'), script, {connectTimeout: 5, timeoutMs: 30_000, signal})
  if (!(await machineKeyWorks(boot, signal))) {
    throw new UserError(`Machine ${record.name} did not accept its new key after the insecure key was replaced`, {
      code: 'KEY_REPLACEMENT_FAILED',
      hint: `Run "vm up ${record.name}" again; if it fails again, "vm destroy -f ${record.name}" and recreate the machine.`,
    })
  }
}
