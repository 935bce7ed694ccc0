import {selectProvisioners, runProvisioners, type ProvisionTrigger} from '../provision/index.js'
import {machinePaths} from '../state/machine-files.js'
import type {Provisioner} from '../vmfile/types.js'
import {writeRecord, type MachineRecord} from './record.js'
import type {MachineEvents} from './events.js'
import {machineKeys, sshTarget} from './ssh-target.js'

/**
 * Runs the machine's provisioners for `trigger` and, when the run covered every once/always
 * provisioner and all succeeded, marks the machine provisioned (never before: a failed first
 * run is retried by the next vm up).
 */
export async function provisionRecord(
  projectDir: string,
  record: MachineRecord,
  provisioners: readonly Provisioner[],
  trigger: ProvisionTrigger,
  only: readonly string[] | undefined,
  events: Pick<MachineEvents, 'info' | 'output'>,
): Promise<{record: MachineRecord; ran: string[]}> {
  const selected = selectProvisioners(provisioners, trigger, only)
  if (selected.length === 0) return {record, ran: []}
  const paths = machinePaths(projectDir, record.name)
  const ran = await runProvisioners(
    selected,
    {
      target: sshTarget(record, paths, machineKeys(record, paths), 'yes'),
      projectDir,
      machine: record.name,
      stateDir: paths.dir,
      onStdout: (line) => (events.output ? events.output('stdout', line) : undefined),
      onStderr: (line) => (events.output ? events.output('stderr', line) : undefined),
    },
    (provisioner) => events.info(`provisioning: ${provisioner.name} (${provisioner.type})`),
  )
  const complete = only === undefined || only.length === 0
  const updated = complete && trigger !== 'up' && record.provisioned !== true ? {...record, provisioned: true} : record
  if (updated !== record) await writeRecord(paths.record, updated)
  return {record: updated, ran}
}
