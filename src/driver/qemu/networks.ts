import {UserError} from '../../errors/errors.js'
import type {MachineRecord} from '../../machine/record.js'
import {nicMac} from '../../machine/networks.js'
import {checkBridge, createTap, isRoot, removeTap, tapName, type TapRecord} from './network/bridge.js'
import {hubFiles, holdPrivateNetworks, privateNetworkKey} from './network/private.js'
import type {NicSpec} from './spec.js'

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
