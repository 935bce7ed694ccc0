import {readFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {renderVmfile} from '../../src/project/init.js'
import {resolveVmfileText} from '../../src/vmfile/index.js'
import {vmfileJsonSchema} from '../../src/vmfile/json-schema.js'
import {vmfileSchema} from '../../src/vmfile/schema.js'
import type {SchemaNode} from '../../src/vmfile/schema-types.js'
import {parseSizeMiB} from '../../src/vmfile/units.js'

/**
 * The schema is the only place a default is written. These tests walk the schema (no key is
 * listed by hand): every declared default is what an omitted key resolves to, follows the
 * schema when the schema's value changes, and is the default the JSON Schema shows.
 */

const root = path.resolve(import.meta.dirname, '../..')
/** The Vmfile lives in the repository root, so a synced folder with host "." exists. */
const vmfilePath = path.join(root, 'Vmfile')

type Raw = Record<string, unknown>
type Defaulted = SchemaNode & {default: unknown}

const hasDefault = (node: SchemaNode): node is Defaulted => 'default' in node && node.default !== undefined
const isRaw = (value: unknown): value is Raw => value !== null && typeof value === 'object' && !Array.isArray(value)

/** Paths read: "a.b" (field), "a[]" (list items), "a.*" (map values), "a<shell>" (a variant). */
const field = (at: string, key: string) => (at === '' ? key : `${at}.${key}`)

/** Every field of the schema that declares a default, by path. */
function schemaDefaults(node: SchemaNode, at = '', out = new Map<string, unknown>()): Map<string, unknown> {
  switch (node.kind) {
    case 'object':
      for (const [key, child] of Object.entries(node.fields)) {
        if (hasDefault(child)) out.set(field(at, key), child.default)
        schemaDefaults(child, field(at, key), out)
      }
      break
    case 'array':
      schemaDefaults(node.items, `${at}[]`, out)
      break
    case 'map':
      schemaDefaults(node.values, `${at}.*`, out)
      break
    case 'tagged':
      for (const [name, variant] of Object.entries(node.variants)) schemaDefaults(variant, `${at}<${name}>`, out)
      break
    case 'anyOf':
      for (const option of node.options) schemaDefaults(option, at, out)
      break
    default:
      break
  }
  return out
}

/** Every default a JSON Schema document declares, by the same paths. */
function jsonSchemaDefaults(schema: Raw, at = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (isRaw(schema.properties)) {
    for (const [key, child] of Object.entries(schema.properties as Record<string, Raw>)) {
      if ('default' in child) out.set(field(at, key), child.default)
      jsonSchemaDefaults(child, field(at, key), out)
    }
  }
  if (isRaw(schema.items)) jsonSchemaDefaults(schema.items, `${at}[]`, out)
  if (isRaw(schema.additionalProperties)) jsonSchemaDefaults(schema.additionalProperties, `${at}.*`, out)
  for (const variant of (schema.oneOf ?? []) as Raw[]) {
    const name = ((variant.properties as Record<string, Raw>).type?.enum as string[])[0]
    jsonSchemaDefaults(variant, `${at}<${name}>`, out)
  }
  for (const option of (schema.anyOf ?? []) as Raw[]) jsonSchemaDefaults(option, at, out)
  return out
}

/** An object in a Vmfile value, where it is (keys and indexes) and the schema node it follows. */
interface Site {
  at: string
  location: Array<number | string>
  node: Extract<SchemaNode, {kind: 'object'}>
}

function objectSites(node: SchemaNode, value: unknown, at = '', location: Array<number | string> = [], out: Site[] = []): Site[] {
  switch (node.kind) {
    case 'object':
      if (!isRaw(value)) break
      out.push({at, location, node})
      for (const [key, child] of Object.entries(node.fields)) {
        if (key in value) objectSites(child, value[key], field(at, key), [...location, key], out)
      }
      break
    case 'array':
      if (Array.isArray(value)) value.forEach((item, index) => objectSites(node.items, item, `${at}[]`, [...location, index], out))
      break
    case 'map':
      if (isRaw(value))
        for (const [key, item] of Object.entries(value as Raw)) objectSites(node.values, item, `${at}.*`, [...location, key], out)
      break
    case 'tagged': {
      const type = isRaw(value) ? String(value.type) : ''
      const variant = node.variants[type]
      if (variant !== undefined) objectSites(variant, value, `${at}<${type}>`, location, out)
      break
    }
    case 'anyOf':
      for (const option of node.options) objectSites(option, value, at, location, out)
      break
    default:
      break
  }
  return out
}

/** A copy of `doc` with the key at `location` + `key` set to `value`, or removed when undefined. */
function withKey(doc: Raw, location: Array<number | string>, key: string, value: unknown): Raw {
  const copy = structuredClone(doc)
  let target = copy as unknown as Record<number | string, unknown>
  for (const step of location) target = target[step] as Record<number | string, unknown>
  if (value === undefined) delete target[key]
  else target[key] = value
  return copy
}

/** A valid value other than the default, chosen from the node alone. */
function otherValue(node: Defaulted): unknown {
  switch (node.kind) {
    case 'boolean':
      return !node.default
    case 'integer': {
      const value = Number(node.default)
      return node.max !== undefined && value + 1 > node.max ? value - 1 : value + 1
    }
    case 'size':
      return (parseSizeMiB(node.default) ?? 0) * 2
    case 'string': {
      const value = String(node.default)
      if (node.enum !== undefined) return node.enum.find((option) => option !== value)
      const last = value.at(-1) ?? ''
      return /\d/.test(last) ? `${value.slice(0, -1)}${(Number(last) + 1) % 10}` : `${value}-x`
    }
    default:
      throw new Error(`no other value for a ${node.kind} default`)
  }
}

/** One of every container the schema has, at the top level and in a machine: the sites. */
const containers: Raw = {
  forwarded_ports: [{guest: 80, host: 8080}],
  networks: [
    {type: 'bridged', bridge: 'br0'},
    {type: 'private', ip: '192.168.56.10/24'},
  ],
  synced_folders: [{host: '.', guest: '/src'}],
  provision: [
    {type: 'shell', inline: 'true'},
    {type: 'file', source: 'a', destination: '/a'},
    {type: 'ansible', playbook: 'p.yml'},
  ],
  ssh: {},
  nat: {},
  libvirt: {},
}
const baseDoc: Raw = {box: 'vmfile/tiny', ...containers, machines: {web: {...containers, forwarded_ports: [{guest: 81, host: 8081}]}}}

/** JSON is YAML: the documents go through the same parser as a Vmfile. */
function resolve(doc: Raw) {
  try {
    return resolveVmfileText(JSON.stringify(doc), vmfilePath)
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${String((error as {details?: string[]}).details)}`)
  }
}

describe('defaults have one owner: the schema', () => {
  const declared = schemaDefaults(vmfileSchema)
  const sites = objectSites(vmfileSchema, baseDoc)

  it('the sample reaches every field that declares a default', () => {
    expect(declared.size).toBeGreaterThan(10)
    const reached = new Set(sites.flatMap((site) => Object.keys(site.node.fields).map((key) => field(site.at, key))))
    for (const key of declared.keys()) expect(reached, `the sample has a place for ${key}`).toContain(key)
  })

  it('an omitted key resolves exactly as the schema default written out, and follows the schema when it changes', () => {
    let checked = 0
    for (const site of sites) {
      for (const [key, node] of Object.entries(site.node.fields)) {
        if (!hasDefault(node)) continue
        const name = field(site.at, key)
        const original = node.default
        const omitted = withKey(baseDoc, site.location, key, undefined)
        const written = resolve(withKey(baseDoc, site.location, key, original))
        expect(resolve(omitted), `${name} omitted is ${JSON.stringify(original)}`).toEqual(written)

        const other = otherValue(node)
        const withOther = withKey(baseDoc, site.location, key, other)
        expect(resolve(withOther), `${name}: ${JSON.stringify(other)} differs from the default`).not.toEqual(written)
        // Changed in the schema alone, the default changes everywhere the key is omitted (here
        // and at the other places that share the node), exactly as writing it out would.
        node.default = other as never
        try {
          expect(resolve(omitted), `${name} omitted follows the schema default changed to ${JSON.stringify(other)}`).toEqual(
            resolve(withOther),
          )
        } finally {
          node.default = original as never
        }
        checked++
      }
    }
    expect(checked).toBeGreaterThanOrEqual(declared.size)
  })

  it('the JSON Schema, generated and shipped, shows the same defaults', () => {
    const shipped = JSON.parse(readFileSync(path.join(root, 'schema/vmfile.schema.json'), 'utf8')) as Raw
    expect(Object.fromEntries(jsonSchemaDefaults(vmfileJsonSchema()))).toEqual(Object.fromEntries(declared))
    expect(Object.fromEntries(jsonSchemaDefaults(shipped))).toEqual(Object.fromEntries(declared))
  })
})

/** Every node of the schema that declares a default (a node shared by several keys, once). */
function defaultedNodes(node: SchemaNode, out = new Set<Defaulted>()): Set<Defaulted> {
  if (hasDefault(node)) out.add(node)
  if (node.kind === 'object') for (const child of Object.values(node.fields)) defaultedNodes(child, out)
  if (node.kind === 'array') defaultedNodes(node.items, out)
  if (node.kind === 'map') defaultedNodes(node.values, out)
  if (node.kind === 'tagged') for (const variant of Object.values(node.variants)) defaultedNodes(variant, out)
  if (node.kind === 'anyOf') for (const option of node.options) defaultedNodes(option, out)
  return out
}

describe('vm init shows the defaults the schema declares', () => {
  it('every "key: value" line whose value is the default changes with the schema', async () => {
    const declared = schemaDefaults(vmfileSchema)
    const isDefaultLine = (line: string) => {
      const match = /^[#\s-]*([a-z_]+): (\S+)/.exec(line)
      if (match === null) return false
      return [...declared].some(([key, value]) => (key === match[1] || key.endsWith(`.${match[1]}`)) && String(value) === match[2])
    }
    const render = () => Promise.all([renderVmfile({box: 'vmfile/tiny'}), renderVmfile({box: 'vmfile/tiny', minimal: true})])
    const before = await render()
    const nodes = [...defaultedNodes(vmfileSchema)]
    const originals = nodes.map((node) => node.default)
    let after: string[]
    try {
      for (const node of nodes) node.default = otherValue(node) as never
      after = await render()
    } finally {
      nodes.forEach((node, index) => (node.default = originals[index] as never))
    }
    let checked = 0
    before.forEach((text, which) => {
      const changed = after[which]?.split('\n') ?? []
      text.split('\n').forEach((line, index) => {
        if (!isDefaultLine(line)) return
        expect(changed[index], `vm init${which === 1 ? ' --minimal' : ''} line ${index + 1}: ${line}`).not.toBe(line)
        checked++
      })
    })
    expect(checked).toBeGreaterThan(10)
  })
})

describe('the checks read the defaults of omitted keys from the schema too', () => {
  /** The schema node of a forwarded port's field, found by walking the schema. */
  const portField = (key: string) => {
    const ports = vmfileSchema.fields.forwarded_ports
    if (ports?.kind !== 'array' || ports.items.kind !== 'object') throw new Error('forwarded_ports is a list of objects')
    const node = ports.items.fields[key]
    if (node === undefined || !hasDefault(node)) throw new Error(`forwarded_ports[].${key} declares a default`)
    return node
  }
  const clashes = (ports: Raw[]) => {
    try {
      resolve({box: 'vmfile/tiny', forwarded_ports: ports})
      return false
    } catch (error) {
      if (/is taken twice/.test(String(error))) return true
      throw error
    }
  }

  it.each(['host_ip', 'protocol', 'auto_correct'])('host port clashes follow the schema default of %s', (key) => {
    const node = portField(key)
    const original = node.default
    const other = otherValue(node)
    // Two forwards of host port 9000: the first writes the other value, the second omits the key
    // (a clash is reported on the later forward, so it is the one whose default decides).
    const written = {guest: 1, host: 9000, [key]: other}
    const omitting = {guest: 2, host: 9000}
    const asOriginal = clashes([written, {...omitting, [key]: original}])
    const asOther = clashes([written, {...omitting, [key]: other}])
    expect(asOther, `${key}: ${JSON.stringify(other)} and ${JSON.stringify(original)} differ for the check`).not.toBe(asOriginal)
    expect(clashes([written, omitting]), `${key} omitted counts as ${JSON.stringify(original)}`).toBe(asOriginal)
    node.default = other as never
    try {
      expect(clashes([written, omitting]), `${key} omitted follows the schema default changed to ${JSON.stringify(other)}`).toBe(asOther)
    } finally {
      node.default = original as never
    }
  })
})
