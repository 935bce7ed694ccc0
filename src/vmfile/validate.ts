import {isAlias, isMap, isPair, isScalar, isSeq, type Alias, type Document, type LineCounter, type Node, type YAMLMap} from 'yaml'

import {aliasTargets} from './aliases.js'
import {checkProjectRules} from './project-rules.js'

import type {ObjectNode, SchemaNode} from './schema-types.js'
import {vmfileSchema} from './schema.js'
import {suggest} from './suggest.js'
import {formatSizeMiB, MAX_SIZE_MIB, sizeAmountMiB} from './units.js'

/** One thing wrong with a Vmfile, located in the file. */
export interface Problem {
  line: number
  col: number
  /** Dotted key path, e.g. machines.web.forwarded_ports[0].guest; empty for the whole file. */
  path: string
  message: string
}

/** `Vmfile:LINE:COL key.path: message`, the one format every problem is printed in. */
export function formatProblem(problem: Problem, fileName = 'Vmfile'): string {
  const where = problem.path === '' ? '' : ` ${problem.path}:`
  return `${fileName}:${problem.line}:${problem.col}${where} ${problem.message}`
}

type Located = Node | null | undefined

class Walker {
  readonly problems: Problem[] = []
  /** Alias targets, found once (yaml's own Alias.resolve scans the whole document each time). */
  private readonly targets: Map<Alias, Node>

  constructor(
    doc: Document,
    private readonly lines: LineCounter,
  ) {
    this.targets = aliasTargets(doc)
  }

  resolve(node: unknown): Located {
    let current = node
    for (let i = 0; i < 20 && isAlias(current); i++) current = this.targets.get(current)
    return (current ?? null) as Located
  }

  private position(node: Located): {line: number; col: number} {
    const offset = node?.range?.[0]
    if (offset === undefined) return {line: 1, col: 1}
    return this.lines.linePos(offset)
  }

  report(node: Located, path: string, message: string): void {
    this.problems.push({...this.position(node), path, message})
  }

  /**
   * Key/value pairs of a mapping, with YAML merge keys (<<) flattened in: a merged key is
   * dropped when the mapping sets it itself (before or after the <<) or an earlier merge did.
   */
  pairs(map: YAMLMap): Array<{key: string; keyNode: Located; value: Located}> {
    const keyOf = (keyNode: Located): string => {
      const raw = isScalar(keyNode) ? keyNode.value : keyNode
      return typeof raw === 'symbol' ? (raw.description ?? '') : String(raw)
    }
    const own = new Set<string>()
    for (const pair of map.items) if (isPair(pair)) own.add(keyOf(pair.key as Located))
    const result: Array<{key: string; keyNode: Located; value: Located}> = []
    const merged = new Set<string>()
    for (const pair of map.items) {
      if (!isPair(pair)) continue
      const keyNode = pair.key as Located
      const key = keyOf(keyNode)
      const value = this.resolve(pair.value)
      if (key === '<<') {
        const sources = isSeq(value) ? value.items.map((item) => this.resolve(item)) : [value]
        for (const source of sources) {
          if (!isMap(source)) continue
          for (const inner of this.pairs(source)) {
            if (own.has(inner.key) || merged.has(inner.key)) continue
            merged.add(inner.key)
            result.push(inner)
          }
        }
        continue
      }
      result.push({key, keyNode, value})
    }
    return result
  }

  /** The plain JavaScript value of a node (aliases and merges resolved). */
  plain(node: Located): unknown {
    if (node === null || node === undefined) return null
    if (isScalar(node)) return node.value
    if (isSeq(node)) return node.items.map((item) => this.plain(this.resolve(item)))
    if (isMap(node)) {
      const out: Record<string, unknown> = {}
      for (const {key, value} of this.pairs(node)) out[key] = this.plain(value)
      return out
    }
    return null
  }

  /** Finds the node at a dotted path below `node`, for locating rule problems. */
  private find(node: Located, path: string): Located {
    let current = node
    for (const key of path.split('.')) {
      if (!isMap(current)) return undefined
      const pair = this.pairs(current).find((p) => p.key === key)
      if (pair === undefined) return undefined
      current = pair.value ?? pair.keyNode
    }
    return current
  }

  check(schema: SchemaNode, node: Located, path: string): void {
    const value = this.plain(node)
    // No string may hold a NUL: it cannot pass through a command line, a file name or C.
    if (typeof value === 'string' && value.includes('\0')) return this.report(node, path, NUL_MESSAGE)
    switch (schema.kind) {
      case 'any':
        if (containsNul(value)) this.report(node, path, NUL_MESSAGE)
        return
      case 'string': {
        if (typeof value !== 'string') return this.report(node, path, `must be a string, not ${describe(value)}`)
        if (schema.enum !== undefined && !schema.enum.includes(value)) {
          const hint = suggest(value, schema.enum)
          return this.report(
            node,
            path,
            `must be one of ${schema.enum.join(', ')}, not "${value}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`,
          )
        }
        if (schema.pattern !== undefined && !new RegExp(schema.pattern.regex).test(value)) {
          return this.report(node, path, `must be ${schema.pattern.hint}, not "${value}"`)
        }
        break
      }
      case 'integer': {
        if (typeof value !== 'number' || !Number.isInteger(value))
          return this.report(node, path, `must be a whole number, not ${describe(value)}`)
        if (schema.min !== undefined && value < schema.min) return this.report(node, path, `must be at least ${schema.min}, not ${value}`)
        if (schema.max !== undefined && value > schema.max) return this.report(node, path, `must be at most ${schema.max}, not ${value}`)
        break
      }
      case 'boolean':
        if (typeof value !== 'boolean') return this.report(node, path, `must be true or false, not ${describe(value)}`)
        break
      case 'literal':
        if (value !== schema.value) return this.report(node, path, `must be ${String(schema.value)}, not ${describe(value)}`)
        break
      case 'scalar':
        if (!['string', 'number', 'boolean'].includes(typeof value))
          return this.report(node, path, `must be a string, number or boolean, not ${describe(value)}`)
        break
      case 'size': {
        const amount = sizeAmountMiB(value)
        if (amount === undefined)
          return this.report(node, path, `must be a size in MiB (2048) or with a unit (2G, 512M), not ${describe(value)}`)
        const min = schema.min ?? 1
        if (amount < min) return this.report(node, path, `must be at least ${formatSizeMiB(min)}, not ${describe(value)}`)
        if (amount > MAX_SIZE_MIB) return this.report(node, path, `must be at most ${formatSizeMiB(MAX_SIZE_MIB)}, not ${describe(value)}`)
        break
      }
      case 'array': {
        if (!isSeq(node)) return this.report(node, path, `must be a list, not ${describe(value)}`)
        node.items.forEach((item, index) => this.check(schema.items, this.resolve(item), `${path}[${index}]`))
        break
      }
      case 'map': {
        if (!isMap(node)) return this.report(node, path, `must be a mapping, not ${describe(value)}`)
        const names = new Map<string, string>()
        for (const {key, keyNode, value: child} of this.pairs(node)) {
          const childPath = join(path, key)
          if (key.includes('\0')) {
            this.report(keyNode, childPath, NUL_MESSAGE)
            continue
          }
          // Names become directories and messages: web and Web are the same name.
          const same = names.get(key.toLowerCase())
          if (same !== undefined) {
            this.report(keyNode, childPath, same === key ? 'is set twice' : `is the same name as "${same}" (names differ only in case)`)
            continue
          }
          names.set(key.toLowerCase(), key)
          if (schema.key !== undefined && !new RegExp(schema.key.regex).test(key)) {
            this.report(keyNode, childPath, `name may contain only ${schema.key.hint}`)
            continue
          }
          this.check(schema.values, child, childPath)
        }
        break
      }
      case 'object':
        this.checkObject(schema, node, path)
        break
      case 'tagged': {
        if (!isMap(node)) return this.report(node, path, `must be a mapping with a "type", not ${describe(value)}`)
        const types = Object.keys(schema.variants)
        const type = (value as Record<string, unknown>).type
        if (type === undefined || type === null) return this.report(node, join(path, 'type'), `is required (one of ${types.join(', ')})`)
        const variant = typeof type === 'string' ? schema.variants[type] : undefined
        if (variant === undefined) {
          const hint = typeof type === 'string' ? suggest(type, types) : undefined
          return this.report(
            this.find(node, 'type'),
            join(path, 'type'),
            `must be one of ${types.join(', ')}, not ${describe(type)}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`,
          )
        }
        this.checkObject(variant, node, path)
        break
      }
      case 'anyOf': {
        const option = schema.options.find((candidate) => shapeMatches(candidate, node))
        if (option === undefined) return this.report(node, path, `must be ${schema.expected}, not ${describe(value)}`)
        this.check(option, node, path)
        break
      }
    }
    const message = schema.check?.(value)
    if (message !== undefined) this.report(node, path, message)
  }

  private checkObject(schema: ObjectNode, node: Located, path: string): void {
    if (!isMap(node)) return this.report(node, path, `must be a mapping, not ${describe(this.plain(node))}`)
    const allowed = Object.keys(schema.fields)
    const seen = new Set<string>()
    for (const {key, keyNode, value} of this.pairs(node)) {
      const field = schema.fields[key]
      const childPath = join(path, key)
      if (key.includes('\0')) {
        this.report(keyNode, childPath, NUL_MESSAGE)
        continue
      }
      if (seen.has(key)) this.report(keyNode, childPath, 'is set twice')
      seen.add(key)
      if (field === undefined) {
        const hint = suggest(key, allowed)
        this.report(keyNode, childPath, `unknown key${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`)
        continue
      }
      this.check(field, value, childPath)
    }
    for (const key of schema.required ?? []) {
      if (!seen.has(key)) this.report(node, join(path, key), 'is required')
    }
    const plain = this.plain(node) as Record<string, unknown>
    for (const rule of schema.rules ?? []) {
      for (const problem of rule(plain)) {
        const target = problem.key === undefined ? node : (this.find(node, problem.key) ?? node)
        this.report(target, problem.key === undefined ? path : join(path, problem.key), problem.message)
      }
    }
  }
}

const NUL_MESSAGE = 'must not contain a NUL character (\\0)'

function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\0')
  if (Array.isArray(value)) return value.some(containsNul)
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([key, item]) => key.includes('\0') || containsNul(item))
  return false
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

function shapeMatches(schema: SchemaNode, node: Located): boolean {
  switch (schema.kind) {
    case 'array':
      return isSeq(node)
    case 'object':
    case 'map':
    case 'tagged':
      return isMap(node)
    case 'literal':
      return isScalar(node) && node.value === schema.value
    case 'string':
      return isScalar(node) && typeof node.value === 'string'
    default:
      return isScalar(node)
  }
}

/** How a wrong value is named in a message. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing'
  if (typeof value === 'string') return `"${value}"`
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return String(value)
}

/**
 * Checks a parsed Vmfile against the schema and the project rules and returns every problem
 * at once, sorted by position. An empty document is one problem. With `dir` (the Vmfile's
 * directory), synced folders are checked on disk too.
 */
export function validateDocument(
  doc: Document,
  lines: LineCounter,
  schema: ObjectNode = vmfileSchema,
  options: {dir?: string} = {},
): Problem[] {
  const walker = new Walker(doc, lines)
  const root = doc.contents as Located
  if (root === null || root === undefined || (isScalar(root) && root.value === null)) {
    walker.report(root, '', 'the Vmfile is empty: it needs at least a "box" (run vm init to write one)')
  } else {
    walker.check(schema, root, '')
    if (schema === vmfileSchema) checkProjectRules(walker, root, options.dir)
  }
  return walker.problems.sort((a, b) => a.line - b.line || a.col - b.col)
}
