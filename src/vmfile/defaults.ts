import path from 'node:path'

import {InternalError} from '../errors/errors.js'
import {DEFAULT_SYNCED_FOLDER, machineNode} from './schema.js'
import type {SchemaNode} from './schema-types.js'
import type {CloudInitConfig, MachineConfig, NetworkConfig, ProjectConfig, Provisioner, SyncedFolder} from './types.js'
import {parseSizeMiB} from './units.js'

/*
 * Every default is written once, as `default:` in schema.ts. This module fills them into the
 * Vmfile's plain value by walking the schema (withSchemaDefaults), then only converts shapes:
 * no default value is written here. What stays here is derived from other keys or from where
 * the Vmfile is (the machine named "default", provisioner names, the project folder).
 */

type Raw = Record<string, unknown>

/** A machine without `machines:` in the Vmfile is named this. */
export const DEFAULT_MACHINE = 'default'

function isRaw(value: unknown): value is Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function asRaw(value: unknown): Raw {
  return isRaw(value) ? value : {}
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function words(value: unknown): string[] {
  if (value === undefined || value === null) return []
  return Array.isArray(value) ? value.map(String) : [String(value)]
}

function optionalString(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value)
}

/** The schema option a value's shape selects (a list, a mapping or a scalar). */
function optionFor(options: readonly SchemaNode[], value: unknown): SchemaNode | undefined {
  if (Array.isArray(value)) return options.find((option) => option.kind === 'array')
  if (isRaw(value)) return options.find((option) => option.kind === 'object' || option.kind === 'map' || option.kind === 'tagged')
  return undefined
}

/**
 * `value` with every key the schema gives a default filled in where it is absent (or null),
 * at every depth: objects, list items, map values, the variant a `type` selects. Values the
 * schema does not describe pass through unchanged.
 */
export function withSchemaDefaults(node: SchemaNode, value: unknown): unknown {
  switch (node.kind) {
    case 'object': {
      if (!isRaw(value)) return value
      const out: Raw = {...value}
      for (const [key, field] of Object.entries(node.fields)) {
        const own = value[key] ?? ('default' in field ? field.default : undefined)
        if (own === undefined) delete out[key]
        else out[key] = withSchemaDefaults(field, own)
      }
      return out
    }
    case 'array':
      return Array.isArray(value) ? value.map((item) => withSchemaDefaults(node.items, item)) : value
    case 'map':
      return isRaw(value)
        ? Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withSchemaDefaults(node.values, item)]))
        : value
    case 'tagged': {
      const variant = isRaw(value) && typeof value.type === 'string' ? node.variants[value.type] : undefined
      return variant === undefined ? value : withSchemaDefaults(variant, value)
    }
    case 'anyOf': {
      const option = optionFor(node.options, value)
      return option === undefined ? value : withSchemaDefaults(option, value)
    }
    default:
      return value
  }
}

/**
 * The default the schema declares for a machine key, by path: "cpus", "ssh.port",
 * "forwarded_ports.host_ip", "provision.shell.run" (lists are stepped through; a provisioner
 * or network names its type). Throws when the path declares no default: a caller that shows
 * defaults (the vm init template) cannot show one the schema does not have.
 */
export function defaultOf(keyPath: string): unknown {
  let node: SchemaNode | undefined = machineNode
  for (const step of keyPath.split('.')) {
    while (node?.kind === 'array' || node?.kind === 'anyOf') {
      node = node.kind === 'array' ? node.items : node.options.find((option) => option.kind === 'array' || option.kind === 'object')
    }
    if (node?.kind === 'object') node = node.fields[step]
    else if (node?.kind === 'tagged') node = node.variants[step]
    else node = undefined
  }
  if (node === undefined || !('default' in node) || node.default === undefined) {
    throw new InternalError(`The Vmfile schema declares no default for "${keyPath}"`)
  }
  return node.default
}

/** An ssh mapping with Vagrant's `username` read as `user` (validation allows one of them). */
function sshWithUser(value: unknown): Raw {
  const {username, ...ssh} = asRaw(value)
  return username === undefined ? ssh : {...ssh, user: username}
}

/** Machine keys inherit from the top level; lists add up (top level first), ssh merges. */
function inherit(top: Raw, own: Raw): Raw {
  const merged: Raw = {...top, ...own}
  for (const key of ['forwarded_ports', 'networks', 'provision']) merged[key] = [...list(top[key]), ...list(own[key])]
  merged.ssh = {...sshWithUser(top.ssh), ...sshWithUser(own.ssh)}
  merged.nat = {...asRaw(top.nat), ...asRaw(own.nat)}
  merged.libvirt = {...asRaw(top.libvirt), ...asRaw(own.libvirt)}
  if (own.synced_folders === false || top.synced_folders === false) merged.synced_folders = own.synced_folders ?? false
  else if (top.synced_folders !== undefined || own.synced_folders !== undefined) {
    merged.synced_folders = [...list(top.synced_folders), ...list(own.synced_folders)]
  } else {
    merged.synced_folders = [{...DEFAULT_SYNCED_FOLDER}]
  }
  return merged
}

/** A size the schema has validated (or defaulted), in MiB. */
function sizeMiB(value: unknown, key: string): number {
  const mib = parseSizeMiB(value)
  if (mib === undefined) throw new InternalError(`${key} reached the defaults unvalidated: ${JSON.stringify(value)}`)
  return mib
}

function resolveSyncedFolders(value: unknown, dir: string): SyncedFolder[] {
  return list(value).map((entry) => {
    const folder = asRaw(entry)
    return {
      host: path.resolve(dir, String(folder.host)),
      guest: String(folder.guest),
      type: folder.type as SyncedFolder['type'],
      readOnly: folder.read_only === true,
      exclude: words(folder.exclude),
    }
  })
}

function resolveNetwork(entry: unknown): NetworkConfig {
  const network = asRaw(entry)
  const mac = network.mac === undefined ? undefined : String(network.mac).toLowerCase()
  if (network.type === 'bridged') return {type: 'bridged', bridge: String(network.bridge), mac, ip: optionalString(network.ip)}
  return {type: 'private', ip: String(network.ip), name: optionalString(network.name), mac}
}

function resolveProvisioner(entry: unknown, index: number): Provisioner {
  const raw = asRaw(entry)
  const base = {
    // Derived, not a schema default: the type and the position in the list.
    name: raw.name === undefined ? `${String(raw.type)}-${index + 1}` : String(raw.name),
    run: raw.run as Provisioner['run'],
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
    path: optionalString(raw.path),
    args: words(raw.args),
    env: Object.fromEntries(Object.entries(asRaw(raw.env)).map(([key, value]) => [key, String(value)])),
    privileged: raw.privileged === true,
    uploadPath: String(raw.upload_path),
  }
}

function resolveCloudInit(value: unknown, dir: string): CloudInitConfig | undefined {
  if (!isRaw(value)) return undefined
  const file = (key: string): string | undefined => (value[key] === undefined ? undefined : path.resolve(dir, String(value[key])))
  return {
    userData: optionalString(value.user_data),
    userDataFile: file('user_data_file'),
    networkConfig: optionalString(value.network_config),
    networkConfigFile: file('network_config_file'),
  }
}

/** Converts a machine whose defaults are filled in (every defaulted key is present). */
function resolveMachine(name: string, raw: Raw, dir: string): MachineConfig {
  const ssh = asRaw(raw.ssh)
  return {
    name,
    provider: raw.provider as MachineConfig['provider'],
    libvirt: {
      uri: optionalString(asRaw(raw.libvirt).uri),
      pool: String(asRaw(raw.libvirt).pool),
      network: String(asRaw(raw.libvirt).network),
    },
    // Derived: a box given only by its URL is named by it.
    box: String(raw.box ?? raw.box_url),
    boxVersion: optionalString(raw.box_version),
    boxUrl: optionalString(raw.box_url),
    cpus: Number(raw.cpus),
    memory: sizeMiB(raw.memory, 'memory'),
    disk: raw.disk === undefined ? undefined : sizeMiB(raw.disk, 'disk'),
    accel: raw.accel as MachineConfig['accel'],
    bootTimeout: Number(raw.boot_timeout),
    hostname: optionalString(raw.hostname),
    vnc: raw.vnc === true,
    ssh: {
      user: optionalString(ssh.user),
      port: Number(ssh.port),
      forwardAgent: ssh.forward_agent === true,
      privateKeyPaths: ssh.private_key_path === undefined ? undefined : words(ssh.private_key_path).map((file) => path.resolve(dir, file)),
      insertKey: ssh.insert_key === true,
    },
    nat: {isolated: asRaw(raw.nat).isolated === true},
    cloudInit: resolveCloudInit(raw.cloud_init, dir),
    forwardedPorts: list(raw.forwarded_ports).map((entry) => {
      const port = asRaw(entry)
      return {
        guest: Number(port.guest),
        host: Number(port.host),
        hostIp: String(port.host_ip),
        protocol: port.protocol as 'tcp' | 'udp',
        autoCorrect: port.auto_correct === true,
      }
    }),
    networks: list(raw.networks).map((entry) => resolveNetwork(entry)),
    syncedFolders: resolveSyncedFolders(raw.synced_folders, dir),
    provision: list(raw.provision).map((entry, index) => resolveProvisioner(entry, index)),
    primary: raw.primary === true,
    autostart: raw.autostart === true,
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
  const {machines: rawMachines, ...shared} = top
  const named = Object.entries(asRaw(rawMachines))
  const machine = (name: string, own: Raw): MachineConfig =>
    resolveMachine(name, asRaw(withSchemaDefaults(machineNode, inherit(shared, own))), dir)
  const machines = named.length === 0 ? [machine(DEFAULT_MACHINE, {})] : named.map(([name, own]) => machine(name, asRaw(own)))
  const primary = machines.find((entry) => entry.primary)?.name ?? machines[0]?.name ?? DEFAULT_MACHINE
  return {file: path.resolve(file), dir, machines, primary}
}
