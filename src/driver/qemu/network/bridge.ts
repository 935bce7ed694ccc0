import type {BridgeKind, TapRecord} from '../../../machine/record.js'
import {existsSync} from 'node:fs'

import {UserError} from '../../../errors/errors.js'
import {runProgram} from '../../../process/run.js'

/**
 * Bridged NICs. As root, vm makes a tap device per NIC, attaches it to the bridge itself (what
 * the classic qemu-ifup scripts did) and removes it on halt and destroy; as any other user,
 * QEMU's setuid bridge helper makes the tap, gated by /etc/qemu/bridge.conf.
 */

export type {TapRecord} from '../../../machine/record.js'

export const BRIDGE_HELPER = '/usr/lib/qemu/qemu-bridge-helper'
export const BRIDGE_CONF = '/etc/qemu/bridge.conf'

const sysNet = (name: string): string => `/sys/class/net/${name}`

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/**
 * The tap of NIC `index` of a machine: its name, a short hash of its id (machines of two
 * projects may share a name) and the index, within the kernel's 15 characters.
 */
export function tapName(machineName: string, machineId: string, index: number): string {
  const name = machineName.replaceAll(/[^A-Za-z0-9_-]/g, '').slice(0, 7) || 'vm'
  return `${name}-${machineId.replaceAll(/[^0-9a-f]/g, '').slice(0, 4)}${index}`.slice(0, 15)
}

/** What kind of bridge `bridge` is, or undefined when there is no such bridge. */
export async function bridgeKind(bridge: string): Promise<BridgeKind | undefined> {
  if (existsSync(`${sysNet(bridge)}/bridge`)) return 'linux'
  if (!existsSync(sysNet(bridge))) return undefined
  try {
    const {code} = await runProgram('ovs-vsctl', ['br-exists', bridge], {timeoutMs: 10_000, okCodes: [0, 2]})
    return code === 0 ? 'ovs' : undefined
  } catch {
    return undefined
  }
}

/** Checks, before QEMU starts, that each bridge exists and can be used by this user. */
export async function checkBridge(machine: string, bridge: string): Promise<BridgeKind> {
  const kind = await bridgeKind(bridge)
  if (kind === undefined) {
    const exists = existsSync(sysNet(bridge))
    throw new UserError(
      exists
        ? `Machine ${machine}: ${bridge} is not a bridge (neither a Linux bridge nor an Open vSwitch bridge)`
        : `Machine ${machine}: bridge ${bridge} does not exist on this host`,
      {
        code: 'BRIDGE_MISSING',
        hint: `Name an existing bridge in the Vmfile's networks (list them with "ip -br link show type bridge"), or create it, e.g. "ip link add ${bridge} type bridge && ip link set ${bridge} up".`,
      },
    )
  }
  if (kind === 'ovs' && !isRoot())
    throw new UserError(`Machine ${machine}: ${bridge} is an Open vSwitch bridge, which only root can attach machines to`, {
      code: 'BRIDGE_DENIED',
      hint: "Run vm as root, or use a Linux bridge that /etc/qemu/bridge.conf allows for QEMU's bridge helper.",
    })
  return kind
}

async function ip(args: string[]): Promise<void> {
  await runProgram('ip', args, {timeoutMs: 15_000, missingHint: 'Install iproute2 (apt-get install iproute2).'})
}

/** Removes a tap vm made (also after QEMU was killed); nothing happens when it is gone. */
export async function removeTap(tap: TapRecord): Promise<void> {
  if (tap.kind === 'ovs') {
    await runProgram('ovs-vsctl', ['--if-exists', 'del-port', tap.bridge, tap.name], {timeoutMs: 15_000}).catch(() => undefined)
  }
  if (existsSync(sysNet(tap.name))) await ip(['link', 'del', 'dev', tap.name])
}

/** As root: a fresh tap attached to the bridge and up, for QEMU to open with script=no. */
export async function createTap(tap: TapRecord): Promise<void> {
  await removeTap(tap)
  await ip(['tuntap', 'add', 'dev', tap.name, 'mode', 'tap'])
  try {
    if (tap.kind === 'ovs') await runProgram('ovs-vsctl', ['--may-exist', 'add-port', tap.bridge, tap.name], {timeoutMs: 15_000})
    else await ip(['link', 'set', 'dev', tap.name, 'master', tap.bridge])
    await ip(['link', 'set', 'dev', tap.name, 'up'])
  } catch (error) {
    await removeTap(tap).catch(() => undefined)
    throw error
  }
}

/**
 * QEMU's bridge helper says little ("bridge helper failed"); the line before says why. Turns
 * that into an error naming the file or permission to change, or undefined for other failures.
 */
export function bridgeHelperError(machine: string, bridges: string[], stderr: string): UserError | undefined {
  if (!/bridge helper failed/.test(stderr)) return undefined
  const which = bridges.join(', ')
  const allow = bridges.map((bridge) => `allow ${bridge}`).join('\\n')
  const reason = stderr.split('\n').find((line) => line.trim() !== '' && !/bridge helper failed/.test(line))
  const details = reason === undefined ? [] : [`The bridge helper said: ${reason.trim()}`]
  if (/failed to parse default acl file|access denied by acl file/.test(stderr))
    return new UserError(`Machine ${machine}: QEMU's bridge helper does not allow bridge ${which}`, {
      code: 'BRIDGE_DENIED',
      details,
      hint: `As root, allow it in ${BRIDGE_CONF}: mkdir -p /etc/qemu && printf '${allow}\\n' >> ${BRIDGE_CONF} (the file must be owned by root and not writable by others), or run vm as root.`,
    })
  if (/Operation not permitted|Permission denied|failed to open \/dev\/net\/tun/.test(stderr))
    return new UserError(`Machine ${machine}: QEMU's bridge helper may not create a tap device for ${which}`, {
      code: 'BRIDGE_DENIED',
      details,
      hint: `The helper needs root rights: as root, chmod u+s ${BRIDGE_HELPER} (or setcap cap_net_admin+ep ${BRIDGE_HELPER}), and /dev/net/tun must be readable and writable by users (chmod 0666 /dev/net/tun). Or run vm as root.`,
    })
  return new UserError(`Machine ${machine}: QEMU's bridge helper failed for ${which}`, {
    code: 'BRIDGE_DENIED',
    details,
    hint: `Check ${BRIDGE_CONF} and the permissions of ${BRIDGE_HELPER}, or run vm as root.`,
  })
}
