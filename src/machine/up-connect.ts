import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import path from 'node:path'

import {UserError, VmError} from '../errors/errors.js'
import {generateKeyPair, insecureKeyPairs, insecurePrivateKeys} from '../ssh/keys.js'
import {driverMachine, finishBootStage, type Boot} from './boot-context.js'
import type {MachineRecord} from './record.js'
import {continueInLogin, copyFolders} from './guest-continuity.js'
import {machineKeys, sshTarget} from './ssh-target.js'
import {foldersFor} from './up-converge.js'

/**
 * The keys offered for the first login: the keys the machine kept (insert_key: false), else
 * the Vmfile's ssh.private_key_path (which replaces the insecure keys, as in Vagrant), else
 * copies of the insecure keys (vm's and Vagrant's). `copies` are the files made here.
 */
async function firstLoginKeys(boot: Boot, keep: boolean): Promise<{keys: string[]; copies: string[]; names: string[] | undefined}> {
  const kept = boot.record.ssh?.loginKeys
  if (kept !== undefined) return {keys: kept, copies: [], names: undefined}
  const configured = boot.record.config.ssh.privateKeyPaths
  if (configured !== undefined) return {keys: configured, copies: [], names: undefined}
  const copies = await insecurePrivateKeys(boot.paths.dir)
  // Messages name the shipped keys: a temporary copy is gone by the time the user reads them.
  return {keys: copies, copies: keep ? [] : copies, names: keep ? undefined : insecureKeyPairs().map((pair) => pair.privateKey)}
}

/**
 * Stage "connect": waits until the guest answers on the endpoint its driver returned (the host
 * key recorded on first contact), then replaces the first-login keys the box trusts with a key
 * pair made for this machine; with insert_key: false it keeps them, and says so.
 */
export async function connectToGuest(boot: Boot): Promise<number | undefined> {
  const {paths, guest} = boot
  const signal = boot.options.interrupt?.signal
  const insertKey = boot.record.config.ssh.insertKey
  const ssh = (): NonNullable<MachineRecord['ssh']> => boot.record.ssh!
  let keys = machineKeys(boot.record, paths)
  let copies: string[] = []
  let names: string[] | undefined
  let bootMs: number | undefined
  const firstLogin = !ssh().keyReplaced
  if (firstLogin) ({keys, copies, names} = await firstLoginKeys(boot, !insertKey))
  if (!insertKey && (firstLogin || ssh().loginKeys !== undefined)) {
    boot.events.warn(
      `ssh.insert_key is false: machine ${boot.record.name} keeps trusting ${keys.join(', ')}; anyone who has ${keys.length === 1 ? 'that key' : 'one of those keys'} can log in (the insecure keys are public)`,
    )
  }
  try {
    try {
      bootMs = await guest.waitForSsh({
        target: sshTarget(boot.record, paths, keys, ssh().keyReplaced && !firstCloudInitContact(boot) ? 'yes' : 'accept-new'),
        timeoutMs: boot.record.config.bootTimeout * 1000,
        watch: boot.driver.bootWatch(driverMachine(boot)),
        onProgress: boot.events.progress,
        signal,
        keyNames: names,
      })
      boot.events.progressDone?.()
    } catch (error) {
      boot.events.progressDone?.()
      // An interrupted key stage may have replaced the key in the guest but not in the record.
      const refused = error instanceof VmError && error.code === 'SSH_KEY_REFUSED'
      if (!refused || !firstLogin || !insertKey || !(await machineKeyWorks(boot, signal))) throw error
      boot.record = {...boot.record, ssh: {...withoutLoginKeys(ssh()), keyReplaced: true}}
    }
    await finishBootStage(boot, 'ssh')
    if (!ssh().keyReplaced) {
      if (insertKey) {
        await replaceInsecureKey(boot, keys, signal)
        // Copies kept while insert_key was false are not needed any more (the user's own keys stay).
        copies = [...copies, ...(ssh().loginKeys ?? []).filter((file) => path.dirname(file) === paths.dir)]
        boot.record = {...boot.record, ssh: {...withoutLoginKeys(ssh()), keyReplaced: true}}
      } else {
        boot.record = {...boot.record, ssh: {...ssh(), keyReplaced: true, loginKeys: keys}}
      }
    }
    await finishBootStage(boot, 'key')
  } finally {
    for (const copy of copies) await rm(copy, {force: true})
  }
  return bootMs
}

/**
 * Stage "connect" of a guest that continues from a saved state or snapshot (stages ssh and
 * folders): it runs already, with the machine's key trusted. The login that proves SSH ready is
 * the one that sets its clock and mounts its 9p shares again (continueInLogin); it opens the
 * machine's shared connection, which the rsync copies after it and the user's next command use.
 */
export async function connectContinuedGuest(boot: Boot): Promise<number | undefined> {
  const {paths} = boot
  const target = sshTarget(boot.record, paths, machineKeys(boot.record, paths), 'yes')
  const folders = foldersFor(boot.driver, boot.record.config.syncedFolders, boot.record.config)
  let copies: number[] = []
  let bootMs: number | undefined
  try {
    bootMs = await boot.guest.waitForSsh({
      target,
      timeoutMs: boot.record.config.bootTimeout * 1000,
      watch: boot.driver.bootWatch(driverMachine(boot)),
      onProgress: boot.events.progress,
      signal: boot.options.interrupt?.signal,
      sshdUp: true,
      login: async (login, signal) => {
        copies = await continueInLogin(login, folders, {run: boot.guest.runInGuest, signal, connectTimeout: 3})
      },
    })
  } finally {
    boot.events.progressDone?.()
  }
  await finishBootStage(boot, 'ssh')
  if ((boot.record.pending ?? []).includes('folders')) {
    await copyFolders(target, folders, copies, (text) => boot.events.info(text))
    await finishBootStage(boot, 'folders')
  }
  return bootMs
}

function withoutLoginKeys(ssh: NonNullable<MachineRecord['ssh']>): NonNullable<MachineRecord['ssh']> {
  const {loginKeys: _loginKeys, ...rest} = ssh
  return rest
}

/** A cloud-init machine logs in with its own key from the first boot, when no host key is recorded yet. */
function firstCloudInitContact(boot: Boot): boolean {
  return boot.record.cloudInit !== undefined && !existsSync(boot.paths.knownHosts)
}

/** Whether the guest accepts the machine's own key (the key stage may have finished in the guest only). */
async function machineKeyWorks(boot: Boot, signal?: AbortSignal): Promise<boolean> {
  if (!existsSync(boot.paths.privateKey)) return false
  return boot.guest.guestAcceptsKey(sshTarget(boot.record, boot.paths, [boot.paths.privateKey], 'yes'), signal)
}

/**
 * Replaces the insecure key the box trusts with a key pair made for this machine; synced to
 * the guest's disk at once, so a machine killed right after its first boot still takes the key.
 */
async function replaceInsecureKey(boot: Boot, firstKeys: readonly string[], signal?: AbortSignal): Promise<void> {
  const {record, paths} = boot
  const publicKey = await generateKeyPair(paths.privateKey, `vmfile ${record.name} ${record.id}`)
  const script = `umask 077 && mkdir -p ~/.ssh && printf '%s\\n' '${publicKey}' > ~/.ssh/authorized_keys.new && mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys && sync`
  await boot.guest.runInGuest(sshTarget(record, paths, firstKeys, 'yes'), script, {
    connectTimeout: 5,
    timeoutMs: 30_000,
    signal,
    shared: false, // a login with the insecure key must not outlive this step
  })
  if (!(await machineKeyWorks(boot, signal))) {
    throw new UserError(`Machine ${record.name} did not accept its new key after the insecure key was replaced`, {
      code: 'KEY_REPLACEMENT_FAILED',
      hint: `Run "vm up ${record.name}" again; if it fails again, "vm destroy -f ${record.name}" and recreate the machine.`,
    })
  }
}
