import {UserError} from '../../errors/errors.js'
import type {Accel} from '../../vmfile/types.js'
import {driverNamed} from '../registry.js'
import type {Virsh} from './virsh.js'

export interface DomainTypeChoice {
  type: 'kvm' | 'qemu'
  /** The accelerator as vm names it (kvm, tcg). */
  accel: 'kvm' | 'tcg'
  warning?: string | undefined
}

/** Whether the host's capabilities offer KVM domains (virsh capabilities). */
export function advertisesKvm(capabilitiesXml: string): boolean {
  return /<domain type=['"]kvm['"]/.test(capabilitiesXml)
}

const choices = new Map<string, Promise<DomainTypeChoice>>()

/**
 * The domain type a machine gets on a libvirt host, once per host and process. libvirt offers
 * KVM whenever /dev/kvm exists, even where its vCPUs never run a 64-bit guest: on a local URI
 * (the daemon is this host) the QEMU engine's probe, which boots a tiny long-mode guest, has
 * the last word. A remote host's KVM is taken as libvirt reports it (a probe there would need
 * a domain of its own).
 */
export function chooseDomainType(virsh: Virsh, requested: Accel): Promise<DomainTypeChoice> {
  const key = `${virsh.host.uri}\0${requested}`
  let found = choices.get(key)
  if (found === undefined) {
    found = probe(virsh, requested)
    choices.set(key, found)
    found.catch(() => choices.delete(key))
  }
  return found
}

async function probe(virsh: Virsh, requested: Accel): Promise<DomainTypeChoice> {
  if (requested === 'tcg') return {type: 'qemu', accel: 'tcg'}
  const {stdout} = await virsh.run(['capabilities'], {doing: 'read the host capabilities'})
  let usable = advertisesKvm(stdout)
  let reason = `libvirt on ${virsh.host.label} offers no KVM domains`
  if (usable && virsh.host.local) {
    // The same host: the QEMU engine's KVM probe (cached per host boot) says whether KVM runs guests.
    const local = await (await driverNamed('qemu')).probeHost(requested === 'kvm' ? 'auto' : requested)
    usable = local.accel === 'kvm'
    if (!usable) reason = 'KVM does not run a test guest on this host'
  }
  if (usable) return {type: 'kvm', accel: 'kvm'}
  if (requested === 'kvm')
    throw new UserError(`KVM was asked for (accel: kvm) but cannot be used on ${virsh.host.label}: ${reason}`, {
      code: 'KVM_UNUSABLE',
      hint: 'Set "accel: auto" or "accel: tcg" in the Vmfile to use software emulation.',
    })
  return {
    type: 'qemu',
    accel: 'tcg',
    warning: `KVM cannot be used on ${virsh.host.label} (${reason}); using TCG software emulation, which is much slower.`,
  }
}
