import {createHash} from 'node:crypto'

import {firstTimeThisBoot} from '../state/once-per-boot.js'
import {writeRecord, type MachineRecord} from './record.js'
import {driverMachine, type Boot} from './boot-context.js'
import {macsFor} from './up-prepare.js'
import {loginUser} from './ssh-target.js'
import {stagesForBoot, type BootStage} from './stages.js'

/** The stages left when a machine continues from a saved state or snapshot: SSH, then its folders again. */
const CONTINUED_STAGES: BootStage[] = ['ssh', 'folders']

/** What a host warning is remembered by: the engine and the warning itself (another reason is said again). */
function hostWarningKey(driver: string, warning: string): string {
  return `host-warning-${driver}-${createHash('sha256').update(warning).digest('hex').slice(0, 12)}`
}

/**
 * Stage "boot": the machine's driver probes the host and starts the machine; the record then
 * says where SSH answers (the endpoint the driver returned) and which stages are left.
 * Ctrl-C from here on undoes the boot instead of leaving a half-booted machine.
 */
export async function bootMachine(boot: Boot): Promise<void> {
  const {driver, events} = boot
  const host = await driver.probeHost(boot.record.config.accel)
  if (host.warning !== undefined && (await firstTimeThisBoot(hostWarningKey(driver.name, host.warning))))
    events.warn(`${host.warning} (said once per host boot; "vm status" shows each machine's accelerator)`)
  boot.record = {
    ...boot.record,
    macs: await macsFor(boot.record.id, boot.record.config.networks, boot.record.macs),
    nics: undefined,
    pending: undefined,
  }
  const started = await driver.start(driverMachine(boot), host, {
    from: boot.options.from,
    info: (text) => events.info(text),
    warn: (text) => events.warn(text),
    save: async (record) => {
      // The driver holds host resources from here on: recorded first, then Ctrl-C undoes the boot.
      await writeRecord(boot.paths.record, record)
      boot.release ??= boot.options.interrupt?.hold()
    },
  })
  const loginKeys = started.record.ssh?.loginKeys
  // A cloud-init machine never trusts an insecure key: its seed installs the machine's own.
  const recorded = started.record.ssh?.keyReplaced ?? started.record.cloudInit !== undefined
  // Kept first-login keys are replaced once the Vmfile no longer says insert_key: false.
  const keyReplaced = recorded && (loginKeys === undefined || !started.record.config.ssh.insertKey)
  const ssh = {...started.ssh, user: loginUser(started.record), keyReplaced, ...(loginKeys === undefined ? {} : {loginKeys})}
  boot.record = {
    ...started.record,
    accel: started.accel,
    ssh,
    lastState: 'running',
    // A guest that continues from a saved state is configured and provisioned already.
    pending: boot.options.from === undefined ? stagesForBoot({...started.record, ssh}) : CONTINUED_STAGES,
  }
  await writeRecord(boot.paths.record, boot.record)
}

/** Stops a machine whose boot failed or was interrupted before it was safe, and records that truthfully. */
export async function stopUnfinished(boot: Boot, record: MachineRecord): Promise<void> {
  const {record: stopped} = await boot.driver.stop({...driverMachine(boot), record}, 0)
  await writeRecord(boot.paths.record, {...(stopped ?? record), lastState: 'poweroff', pending: undefined})
}
