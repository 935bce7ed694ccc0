import {statSync} from 'node:fs'
import path from 'node:path'

import {isMap, isSeq, type Node, type YAMLMap} from 'yaml'

import {DEFAULT_MACHINE, defaultOf} from './defaults.js'

type Located = Node | null | undefined

/** What the rules need from the validator: merged pairs, alias resolution, plain values, reports. */
export interface RuleWalker {
  pairs(map: YAMLMap): Array<{key: string; keyNode: Located; value: Located}>
  resolve(node: unknown): Located
  plain(node: Located): unknown
  report(node: Located, path: string, message: string): void
}

/** One list entry a machine ends up with, and where it is written (top level or the machine). */
interface Entry {
  node: Located
  path: string
  value: Record<string, unknown>
}

interface MachineEntries {
  name: string
  ports: Entry[]
  folders: Entry[]
}

function listEntries(walker: RuleWalker, node: Located, prefix: string): Entry[] {
  if (!isSeq(node)) return []
  return node.items.map((item, index) => {
    const resolved = walker.resolve(item)
    const value = walker.plain(resolved)
    return {
      node: resolved,
      path: `${prefix}[${index}]`,
      value: value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {},
    }
  })
}

function field(walker: RuleWalker, map: Located, key: string): Located {
  if (!isMap(map)) return undefined
  return walker.pairs(map).find((pair) => pair.key === key)?.value
}

/** Each machine's forwarded ports and synced folders, inherited the way defaults.ts merges them. */
function machineEntries(walker: RuleWalker, root: YAMLMap): MachineEntries[] {
  const topPorts = listEntries(walker, field(walker, root, 'forwarded_ports'), 'forwarded_ports')
  const topFoldersNode = field(walker, root, 'synced_folders')
  const topFolders = listEntries(walker, topFoldersNode, 'synced_folders')
  const machines = field(walker, root, 'machines')
  const named = isMap(machines) ? walker.pairs(machines) : []
  if (named.length === 0) return [{name: DEFAULT_MACHINE, ports: topPorts, folders: topFolders}]
  return named.map(({key, value}) => {
    const prefix = `machines.${key}`
    const ownFoldersNode = field(walker, value, 'synced_folders')
    const off = walker.plain(topFoldersNode) === false || walker.plain(ownFoldersNode) === false
    return {
      name: key,
      ports: [...topPorts, ...listEntries(walker, field(walker, value, 'forwarded_ports'), `${prefix}.forwarded_ports`)],
      folders: off ? [] : [...topFolders, ...listEntries(walker, ownFoldersNode, `${prefix}.synced_folders`)],
    }
  })
}

/** Whether two listen addresses overlap: equal, or one is a wildcard covering the other. */
function overlaps(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true
  const v4 = (ip: string) => !ip.includes(':')
  return (a === '0.0.0.0' && v4(b)) || (b === '0.0.0.0' && v4(a))
}

interface Claim {
  machine: string
  path: string
  ip: string
  port: number
  protocol: string
}

/**
 * Two forwards may not listen on the same host address, port and protocol: within a machine,
 * or across the project's machines (which run at once). A forward with auto_correct: true
 * moves to a free port by itself and is not a clash.
 */
function checkHostPorts(walker: RuleWalker, machines: MachineEntries[]): void {
  const claims: Claim[] = []
  const reported = new Set<Located>()
  for (const machine of machines) {
    for (const entry of machine.ports) {
      const {host, host_ip: hostIp, protocol, auto_correct: autoCorrect} = entry.value
      if (typeof host !== 'number' || !Number.isInteger(host)) continue
      // This runs before defaults are filled in: an omitted (or mistyped) key counts as the schema's default.
      const claim: Claim = {
        machine: machine.name,
        path: entry.path,
        ip: typeof hostIp === 'string' ? hostIp : String(defaultOf('forwarded_ports.host_ip')),
        port: host,
        protocol: typeof protocol === 'string' ? protocol : String(defaultOf('forwarded_ports.protocol')),
      }
      const corrects = typeof autoCorrect === 'boolean' ? autoCorrect : defaultOf('forwarded_ports.auto_correct') === true
      const clash = claims.find((other) => other.port === claim.port && other.protocol === claim.protocol && overlaps(other.ip, claim.ip))
      if (clash !== undefined && !corrects && !reported.has(entry.node)) {
        reported.add(entry.node)
        const where =
          clash.path === claim.path
            ? `every machine inherits it from the top level (${machines.map((m) => m.name).join(', ')})`
            : `${clash.path}${clash.machine === claim.machine || machines.length === 1 ? '' : ` (machine ${clash.machine})`} forwards it already`
        walker.report(
          entry.node,
          claim.path,
          `host port ${claim.port}/${claim.protocol} on ${claim.ip} is taken twice: ${where}; use another host port, or auto_correct: true`,
        )
      }
      claims.push(claim)
    }
  }
}

/** A synced folder's host side must be an existing directory, relative to the Vmfile's. */
function checkSyncedFolders(walker: RuleWalker, machines: MachineEntries[], dir: string): void {
  const seen = new Set<Located>()
  for (const machine of machines) {
    for (const entry of machine.folders) {
      if (seen.has(entry.node)) continue
      seen.add(entry.node)
      const host = entry.value.host
      if (typeof host !== 'string' || host.includes('\0')) continue
      const full = path.resolve(dir, host)
      const hostNode = field(walker, entry.node, 'host') ?? entry.node
      const stats = statSync(full, {throwIfNoEntry: false})
      if (stats === undefined) {
        walker.report(
          hostNode,
          `${entry.path}.host`,
          `the folder "${host}" does not exist (relative paths start at the Vmfile's directory)`,
        )
      } else if (!stats.isDirectory()) {
        walker.report(hostNode, `${entry.path}.host`, `"${host}" is not a directory: a synced folder shares a directory`)
      }
    }
  }
}

/** Each ssh.private_key_path entry (top level and machines) must be an existing file, relative to the Vmfile's. */
function checkPrivateKeys(walker: RuleWalker, root: YAMLMap, dir: string): void {
  const machines = field(walker, root, 'machines')
  const places: Array<{ssh: Located; prefix: string}> = [{ssh: field(walker, root, 'ssh'), prefix: 'ssh'}]
  if (isMap(machines))
    for (const {key, value} of walker.pairs(machines)) places.push({ssh: field(walker, value, 'ssh'), prefix: `machines.${key}.ssh`})
  for (const {ssh, prefix} of places) {
    const node = walker.resolve(field(walker, ssh, 'private_key_path'))
    if (node === undefined || node === null) continue
    const items = isSeq(node)
      ? node.items.map((item, index) => ({node: walker.resolve(item), path: `${prefix}.private_key_path[${index}]`}))
      : [{node, path: `${prefix}.private_key_path`}]
    for (const item of items) {
      const file = walker.plain(item.node)
      if (typeof file !== 'string' || file.includes('\0')) continue
      const stats = statSync(path.resolve(dir, file), {throwIfNoEntry: false})
      if (stats === undefined)
        walker.report(item.node, item.path, `the key "${file}" does not exist (relative paths start at the Vmfile's directory)`)
      else if (!stats.isFile()) walker.report(item.node, item.path, `"${file}" is not a file: name a private key file`)
    }
  }
}

/** The files `cloud_init:` names (user_data_file, network_config_file) must be files, relative to the Vmfile's directory. */
function checkCloudInitFiles(walker: RuleWalker, root: YAMLMap, dir: string): void {
  const machines = field(walker, root, 'machines')
  const places: Array<{node: Located; prefix: string}> = [{node: field(walker, root, 'cloud_init'), prefix: 'cloud_init'}]
  if (isMap(machines))
    for (const {key, value} of walker.pairs(machines))
      places.push({node: field(walker, value, 'cloud_init'), prefix: `machines.${key}.cloud_init`})
  for (const {node, prefix} of places) {
    for (const key of ['user_data_file', 'network_config_file']) {
      const fileNode = field(walker, node, key)
      const file = walker.plain(fileNode)
      if (typeof file !== 'string' || file.includes('\0')) continue
      const stats = statSync(path.resolve(dir, file), {throwIfNoEntry: false})
      if (stats === undefined)
        walker.report(fileNode, `${prefix}.${key}`, `the file "${file}" does not exist (relative paths start at the Vmfile's directory)`)
      else if (!stats.isFile()) walker.report(fileNode, `${prefix}.${key}`, `"${file}" is not a file`)
    }
  }
}

/**
 * Rules about the project as a whole, after the schema: clashing host ports and, when the
 * Vmfile's directory is known, missing synced-folder directories.
 */
export function checkProjectRules(walker: RuleWalker, root: Located, dir: string | undefined): void {
  if (!isMap(root)) return
  const machines = machineEntries(walker, root)
  checkHostPorts(walker, machines)
  if (dir !== undefined) {
    checkSyncedFolders(walker, machines, dir)
    checkPrivateKeys(walker, root, dir)
    checkCloudInitFiles(walker, root, dir)
  }
}
