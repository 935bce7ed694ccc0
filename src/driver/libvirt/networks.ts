import {createHash} from 'node:crypto'

import type {MachineRecord} from '../../machine/record.js'
import {nicMac} from '../../machine/networks.js'
import {failureOf, withXmlFile, type Virsh} from './virsh.js'
import {renderNetworkXml, type NetworkSpec} from './xml.js'

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8)
}

/** Subnets tried for a NAT network vm creates, in order: 192.168.X.0/24, X derived from the name first. */
export function natSubnets(name: string, count = 6): number[] {
  const first = 100 + (Number.parseInt(shortHash(name).slice(0, 4), 16) % 100)
  return Array.from({length: count}, (_unused, index) => 100 + ((first - 100 + index * 37) % 100))
}

/** The NAT network vm defines when the host lacks `name`: DHCP over the whole /24 but the gateway. */
export function natNetworkSpec(name: string, octet: number): NetworkSpec {
  return {
    name,
    bridge: `vmnat-${shortHash(name)}`.slice(0, 15),
    nat: {address: `192.168.${octet}.1`, netmask: '255.255.255.0', dhcpStart: `192.168.${octet}.10`, dhcpEnd: `192.168.${octet}.254`},
  }
}

/**
 * The isolated libvirt network of a private network: named by the Vmfile's network name, or
 * by the project when it names none, so that machines naming one network on one host share it.
 */
export function privateNetworkSpec(name: string | undefined, projectDir: string): NetworkSpec {
  const own = name !== undefined && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$/.test(name) ? name : undefined
  const key = name === undefined ? `project:${projectDir}` : `name:${name}`
  const networkName = own === undefined ? `vmfile-private-${shortHash(key)}` : `vmfile-private-${own}`
  return {name: networkName, bridge: `vmpriv-${shortHash(key)}`.slice(0, 15)}
}

type NetState = 'active' | 'inactive' | 'missing'

async function networkState(virsh: Virsh, name: string): Promise<NetState> {
  const info = await virsh.runUnless('network-failed', ['net-info', name], {doing: `look up network ${name}`})
  if (info === undefined) return 'missing'
  return /^Active:\s+yes/m.test(info.stdout) ? 'active' : 'inactive'
}

async function startNetwork(virsh: Virsh, name: string): Promise<void> {
  try {
    await virsh.run(['net-start', name], {doing: `start network ${name}`})
  } catch (error) {
    // Another vm may have started it meanwhile.
    if ((await networkState(virsh, name)) !== 'active') throw error
  }
}

async function defineNetwork(virsh: Virsh, spec: NetworkSpec): Promise<void> {
  try {
    const xml = await renderNetworkXml(spec)
    await withXmlFile(xml, (file) => virsh.run(['net-define', file], {doing: `define network ${spec.name}`}))
  } catch (error) {
    // Another vm may have defined it meanwhile.
    if ((await networkState(virsh, spec.name)) === 'missing') throw error
  }
}

/**
 * The NAT network of the machines' first NIC runs on the host: an existing network of that
 * name is used as it is (started when it is not); a missing one is created with DHCP on the
 * first free subnet vm tries. A network that cannot start is an error naming the host.
 */
export async function ensureNatNetwork(virsh: Virsh, name: string): Promise<void> {
  const state = await networkState(virsh, name)
  if (state === 'active') return
  if (state === 'inactive') return startNetwork(virsh, name)
  const subnets = natSubnets(name)
  for (const [index, octet] of subnets.entries()) {
    await defineNetwork(virsh, natNetworkSpec(name, octet))
    try {
      await startNetwork(virsh, name)
      return
    } catch (error) {
      // A subnet or bridge another network holds: undefine and try the next subnet.
      const clash = /already in use|overlap|conflict/i.test(
        (error as Error).message + ((error as {details?: string[]}).details ?? []).join('\n'),
      )
      if (!clash || index === subnets.length - 1 || failureOf(error) !== 'network-failed') throw error
      await virsh.runUnless('network-failed', ['net-undefine', name], {doing: `remove network ${name}`})
    }
  }
}

/** An isolated network (no <forward>, no host address) for a private network, shared by the machines that name it. */
export async function ensureIsolatedNetwork(virsh: Virsh, spec: NetworkSpec): Promise<void> {
  const state = await networkState(virsh, spec.name)
  if (state === 'active') return
  if (state === 'missing') await defineNetwork(virsh, spec)
  await startNetwork(virsh, spec.name)
}

/** The machine's NICs as the domain gets them: the NAT network first, then the Vmfile's networks, each with its stable MAC. */
export async function attachNics(
  virsh: Virsh,
  record: MachineRecord,
  natNetwork: string,
): Promise<Array<{mac: string; network?: string; bridge?: string}>> {
  await ensureNatNetwork(virsh, natNetwork)
  const nics: Array<{mac: string; network?: string; bridge?: string}> = [{mac: nicMac(record, 0), network: natNetwork}]
  for (const [position, network] of record.config.networks.entries()) {
    const mac = nicMac(record, position + 1)
    if (network.type === 'bridged') nics.push({mac, bridge: network.bridge})
    else {
      const spec = privateNetworkSpec(network.name, record.projectDir)
      await ensureIsolatedNetwork(virsh, spec)
      nics.push({mac, network: spec.name})
    }
  }
  return nics
}
