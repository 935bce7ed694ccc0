import {existsSync} from 'node:fs'
import path from 'node:path'

import {chooseAccelerator, probeKvm, type AccelChoice} from './accel.js'
import type {HostFacts} from './spec.js'
import {vmPaths} from '../../state/paths.js'
import type {Accel} from '../../vmfile/types.js'

const QBOOT = '/usr/share/qemu/qboot.rom'

/** Facts about this host that the QEMU command line depends on; probed once per command. */
export function hostFacts(env: NodeJS.ProcessEnv = process.env): HostFacts {
  return {qemuBinary: env.VM_QEMU ?? 'qemu-system-x86_64', qbootRom: existsSync(QBOOT) ? QBOOT : undefined}
}

let probe: ReturnType<typeof probeKvm> | undefined

/** The accelerator for a machine; the KVM probe runs at most once per host boot (cached). */
export async function selectAccelerator(requested: Accel, host: HostFacts): Promise<AccelChoice> {
  if (requested === 'tcg') return {accel: 'tcg'}
  probe ??= probeKvm(host.qemuBinary, path.join(vmPaths().cache, 'kvm-probe.json'))
  return chooseAccelerator(requested, await probe)
}
