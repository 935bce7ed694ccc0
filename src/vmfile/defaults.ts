import path from 'node:path'

import {machineFields} from './schema.js'
import type {SchemaNode} from './schema-types.js'
import type {MachineConfig, NetworkConfig, ProjectConfig, Provisioner, SyncedFolder} from './types.js'
import {parseSizeMiB} from './units.js'

type Raw = Record<string, unknown>

/** The default of a top-level machine key, from the schema (one source of truth). */
export function defaultOf(key: string): unknown {
  const node: SchemaNode | undefined = machineFields[key]
  return node !== undefined && 'default' in node ? node.default : undefined
}

export const DEFAULT_MACHINE = 'default'
export const DEFAULT_SYNCED_GUEST_PATH = '/vm'

function asRaw(value: unknown): Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : {}
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function words(value: unknown): string[] {
  if (value === undefined || value === null) return []
  return Array.isArray(value) ? value.map(String) : [String(value)]
}

/** Machine keys inherit from the top level; lists add up (top level first), ssh merges. */
function inherit(top: Raw, own: Raw): Raw {
  const merged: Raw = {...top, ...own}
  for (const key of ['forwarded_ports', 'networks', 'provision']) merged[key] = [...list(top[key]), ...list(own[key])]
  merged.ssh = {...asRaw(top.ssh), ...asRaw(own.ssh)}
  if (own.synced_folders === false || top.synced_folders === false) merged.synced_folders = own.synced_folders ?? false
  else if (top.synced_folders !== undefined || own.synced_folders !== undefined) {
    merged.synced_folders = [...list(top.synced_folders), ...list(own.synced_folders)]
  }
  return merged
}

function resolveSyncedFolders(value: unknown, dir: string): SyncedFolder[] {
  if (value === false) return []
  const folders = value === undefined ? [{host: '.', guest: DEFAULT_SYNCED_GUEST_PATH}] : list(value)
  return folders.map((entry) => {
    const folder = asRaw(entry)
    return {
      host: path.resolve(dir, String(folder.host)),
      guest: String(folder.guest),
      type: (folder.type ?? 'auto') as SyncedFolder['type'],
      readOnly: folder.read_only === true,
      exclude: words(folder.exclude),
    }
  })
}

function resolveNetwork(entry: unknown): NetworkConfig {
  const network = asRaw(entry)
  const mac = network.mac === undefined ? undefined : String(network.mac).toLowerCase()
  if (network.type === 'bridged') {
    return {type: 'bridged', bridge: String(network.bridge), mac, ip: network.ip === undefined ? undefined : String(network.ip)}
  }
  return {type: 'private', ip: String(network.ip), name: network.name === undefined ? undefined : String(network.name), mac}
}

function resolveProvisioner(entry: unknown, index: number): Provisioner {
  const raw = asRaw(entry)
  const base = {
    name: raw.name === undefined ? `${String(raw.type)}-${index + 1}` : String(raw.name),
    run: (raw.run ?? 'once') as Provisioner['run'],
  }
  if (raw.type === 'file') return {...base, type: 'file', source: String(raw.source), destination: String(raw.destination)}
  if (raw.type === 'ansible') {
    return {...base, type: 'ansible', playbook: String(raw.playbook), extraVars: asRaw(raw.extra_vars), become: raw.become === true}
  }
  const inline = raw.inline === undefined ? undefined : words(raw.inline).join('\n')
  return {
    ...base,
    type: 'shell',
    inline,
    path: raw.path === undefined ? undefined : String(raw.path),
    args: words(raw.args),
    env: Object.fromEntries(Object.entries(asRaw(raw.env)).map(([key, value]) => [key, String(value)])),
    privileged: raw.privileged !== false,
    uploadPath: raw.upload_path === undefined ? '/tmp/vm-shell' : String(raw.upload_path),
  }
}

function resolveMachine(name: string, raw: Raw, dir: string): MachineConfig {
  const ssh = asRaw(raw.ssh)
  return {
    name,
    box: String(raw.box ?? raw.box_url),
    boxVersion: raw.box_version === undefined ? undefined : String(raw.box_version),
    boxUrl: raw.box_url === undefined ? undefined : String(raw.box_url),
    cpus: Number(raw.cpus ?? defaultOf('cpus')),
    memory: parseSizeMiB(raw.memory ?? defaultOf('memory')) ?? 1024,
    disk: raw.disk === undefined ? undefined : parseSizeMiB(raw.disk),
    accel: (raw.accel ?? defaultOf('accel')) as MachineConfig['accel'],
    bootTimeout: Number(raw.boot_timeout ?? defaultOf('boot_timeout')),
    hostname: raw.hostname === undefined ? undefined : String(raw.hostname),
    vnc: raw.vnc === true,
    ssh: {
      user: ssh.user === undefined ? undefined : String(ssh.user),
      port: Number(ssh.port ?? 22),
      forwardAgent: ssh.forward_agent === true,
    },
    forwardedPorts: list(raw.forwarded_ports).map((entry) => {
      const port = asRaw(entry)
      return {
        guest: Number(port.guest),
        host: Number(port.host),
        hostIp: String(port.host_ip ?? '127.0.0.1'),
        protocol: (port.protocol ?? 'tcp') as 'tcp' | 'udp',
        autoCorrect: port.auto_correct === true,
      }
    }),
    networks: list(raw.networks).map((entry) => resolveNetwork(entry)),
    syncedFolders: resolveSyncedFolders(raw.synced_folders, dir),
    provision: list(raw.provision).map((entry, index) => resolveProvisioner(entry, index)),
    primary: raw.primary === true,
    autostart: raw.autostart !== false,
  }
}

/**
 * Fills defaults into a validated Vmfile (its plain value) and resolves machines:
 * without `machines:` the file defines one machine, "default". Call validate first:
 * this function assumes the shapes the schema guarantees.
 */
export function applyDefaults(value: unknown, file: string): ProjectConfig {
  const top = asRaw(value)
  const dir = path.dirname(path.resolve(file))
  const {machines: rawMachines, ...defaults} = top
  const named = Object.entries(asRaw(rawMachines))
  const machines =
    named.length === 0
      ? [resolveMachine(DEFAULT_MACHINE, inherit({}, defaults), dir)]
      : named.map(([name, own]) => resolveMachine(name, inherit(defaults, asRaw(own)), dir))
  const primary = machines.find((machine) => machine.primary)?.name ?? machines[0]?.name ?? DEFAULT_MACHINE
  return {file: path.resolve(file), dir, machines, primary}
}
