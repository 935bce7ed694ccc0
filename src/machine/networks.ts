import {guestNetworkScript, parseGuestNetworkReport, ADDRESS_WAIT_SECONDS} from '../network/guest.js'
import {machineMac} from '../network/mac.js'
import {runInGuest} from '../ssh/exec.js'
import type {SshTarget} from '../ssh/options.js'
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

export function nicMac(record: MachineRecord, index: number): string {
  return record.macs[index] ?? machineMac(record.id, index)
}

/** What vm status shows before the guest has told anything: the NAT NIC and the configured ones. */
export function configuredNics(record: MachineRecord, natAddress: string | undefined): NicStatus[] {
  return [
    {type: 'nat', mac: nicMac(record, 0), network: undefined, device: undefined, address: natAddress},
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
export async function configureGuestNetworks(
  record: MachineRecord,
  natAddress: string | undefined,
  target: SshTarget,
  warn: (text: string) => void,
): Promise<NicStatus[]> {
  const nics = configuredNics(record, natAddress)
  if (record.config.networks.length === 0) return nics
  const wanted = nics.slice(1).map((nic) => ({mac: nic.mac, address: nic.address}))
  const command = target.user === 'root' ? 'sh -s' : 'sudo -n sh -s'
  const {stdout} = await runInGuest(target, command, {
    connectTimeout: 10,
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
