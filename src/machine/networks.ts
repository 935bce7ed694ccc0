import {UserError} from '../errors/errors.js'
import type {NicSpec} from '../driver/qemu/spec.js'
import {checkBridge, createTap, isRoot, removeTap, tapName, type TapRecord} from '../network/bridge.js'
import {guestNetworkScript, parseGuestNetworkReport, ADDRESS_WAIT_SECONDS} from '../network/guest.js'
import {machineMac} from '../network/mac.js'
import {hubFiles, holdPrivateNetworks, privateNetworkKey} from '../network/private.js'
import {runProgram} from '../process/run.js'
import type {SshTarget} from '../ssh/options.js'
import {sshArgs} from '../ssh/options.js'
import type {MachineRecord} from './record.js'

/** One NIC as vm status shows it. */
export interface NicStatus {
  type: 'nat' | 'bridged' | 'private'
  mac: string
  /** The bridge, or the private network's name ("project" for the project's own). */
  network: string | undefined
  device: string | undefined
  /** IPv4 address with prefix; for bridged DHCP NICs, as learned from the guest. */
  address: string | undefined
}

/** The address QEMU's user-mode network gives the first NIC. */
export const NAT_ADDRESS = '10.0.2.15/24'

export function nicMac(record: MachineRecord, index: number): string {
  return record.macs[index] ?? machineMac(record.id, index)
}

export interface AttachedNetworks {
  /** NICs after the first (user-mode) one, in Vmfile order. */
  nics: NicSpec[]
  /** Taps vm created (root only); removed on halt and destroy. */
  taps: TapRecord[]
  /** Call once QEMU has started (or failed to). */
  release(): Promise<void>
}

/**
 * Everything the extra NICs need on the host before QEMU starts: each bridge checked (a missing
 * one is an error now, not a QEMU failure later), taps made when root, the switches of private
 * networks running and held.
 */
export async function attachNetworks(record: MachineRecord): Promise<AttachedNetworks> {
  const root = isRoot()
  const nics: NicSpec[] = []
  const taps: TapRecord[] = []
  const hubs: string[] = []
  for (const [position, network] of record.config.networks.entries()) {
    const index = position + 1
    const mac = nicMac(record, index)
    if (network.type === 'bridged') {
      const kind = await checkBridge(record.name, network.bridge)
      if (root) {
        const tap = {name: tapName(record.name, record.id, index), bridge: network.bridge, kind}
        taps.push(tap)
        nics.push({kind: 'tap', mac, ifname: tap.name})
      } else {
        nics.push({kind: 'bridge', mac, bridge: network.bridge})
      }
    } else {
      const key = privateNetworkKey(network.name, record.projectDir)
      hubs.push(key)
      nics.push({kind: 'stream', mac, socket: hubFiles(key).socket})
    }
  }
  const made: TapRecord[] = []
  let releaseHubs = async (): Promise<void> => {}
  try {
    for (const tap of taps) {
      await createTap(tap)
      made.push(tap)
    }
    if (hubs.length > 0) releaseHubs = await holdPrivateNetworks(hubs)
  } catch (error) {
    for (const tap of made) await removeTap(tap).catch(() => undefined)
    throw error
  }
  return {nics, taps, release: releaseHubs}
}

/** Removes the machine's taps; safe to call when QEMU is gone or never started. */
export async function detachNetworks(record: MachineRecord): Promise<void> {
  const errors: unknown[] = []
  for (const tap of record.taps ?? []) await removeTap(tap).catch((error: unknown) => errors.push(error))
  if (errors.length > 0)
    throw new UserError(`Could not remove the tap devices of machine ${record.name}`, {
      cause: errors[0],
      hint: `Remove them by hand: ${(record.taps ?? []).map((tap) => `ip link del ${tap.name}`).join('; ')}`,
    })
}

/** What vm status shows before the guest has told anything: the NAT NIC and the configured ones. */
export function configuredNics(record: MachineRecord): NicStatus[] {
  return [
    {type: 'nat', mac: nicMac(record, 0), network: undefined, device: undefined, address: NAT_ADDRESS},
    ...record.config.networks.map((network, position): NicStatus => ({
      type: network.type,
      mac: nicMac(record, position + 1),
      network: network.type === 'bridged' ? network.bridge : (network.name ?? 'project'),
      device: undefined,
      address: network.ip,
    })),
  ]
}

/**
 * Configures the extra NICs inside the guest over SSH (as root through sudo) and returns every
 * NIC with the address the guest reports. NICs that got no address are warned about.
 */
export async function configureGuestNetworks(record: MachineRecord, target: SshTarget, warn: (text: string) => void): Promise<NicStatus[]> {
  const nics = configuredNics(record)
  if (record.config.networks.length === 0) return nics
  const wanted = nics.slice(1).map((nic) => ({mac: nic.mac, address: nic.address}))
  const command = target.user === 'root' ? 'sh -s' : 'sudo -n sh -s'
  const {stdout} = await runProgram('ssh', [...sshArgs(target, {batch: true, connectTimeout: 10}), command], {
    input: guestNetworkScript(wanted),
    timeoutMs: (ADDRESS_WAIT_SECONDS + 60) * 1000,
  })
  const report = parseGuestNetworkReport(wanted, stdout)
  return nics.map((nic, index) => {
    if (index === 0) return nic
    const state = report[index - 1]!
    const where = nic.type === 'bridged' ? `bridge ${nic.network}` : `private network ${nic.network}`
    if (state.error === 'no-interface') warn(`NIC ${index + 1} (${nic.mac}, ${where}): the guest has no interface with this MAC`)
    else if (state.error === 'no-dhcp-client')
      warn(`NIC ${index + 1} (${nic.mac}, ${where}): the guest has no DHCP client (dhclient or udhcpc)`)
    else if (state.address === undefined)
      warn(
        nic.address === undefined
          ? `NIC ${index + 1} (${state.device ?? nic.mac}, ${where}) got no DHCP lease within ${ADDRESS_WAIT_SECONDS} s`
          : `NIC ${index + 1} (${state.device ?? nic.mac}, ${where}) did not take the address ${nic.address}`,
      )
    return {...nic, device: state.device, address: state.address}
  })
}
