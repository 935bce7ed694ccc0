import {isMap, isScalar, type Document, type LineCounter, type Node} from 'yaml'

import type {ParsedVmfile} from './load.js'
import type {Problem} from './validate.js'

/*
 * Problems found after the Vmfile was resolved (an engine's validate sees a machine's settings,
 * not the file) name a key path such as machines.web.libvirt.uri. This places them in the file
 * as the schema's problems are placed: where the value is set for that machine, which is under
 * `machines: NAME:` or, when the machine inherits it, at the top level.
 */

/** "machines.web.libvirt.uri" -> {machine: "web", rest: ["libvirt", "uri"]}; other paths: no machine. */
function splitPath(keyPath: string): {machine: string | undefined; rest: string[]} {
  const parts = keyPath === '' ? [] : keyPath.split('.')
  if (parts[0] === 'machines' && parts.length >= 2) return {machine: parts[1], rest: parts.slice(2)}
  return {machine: undefined, rest: parts}
}

/** The node at `keys` under `root` (plain string keys of mappings only); undefined when absent. */
function nodeAt(root: unknown, keys: readonly string[]): Node | undefined {
  let current: unknown = root
  for (const key of keys) {
    if (!isMap(current)) return undefined
    const pair = current.items.find((item) => isScalar(item.key) && String(item.key.value) === key)
    if (pair === undefined) return undefined
    current = pair.value ?? pair.key
  }
  return current as Node | undefined
}

function positionOf(node: Node | undefined, lines: LineCounter): {line: number; col: number} | undefined {
  const offset = node?.range?.[0]
  return offset === undefined ? undefined : lines.linePos(offset)
}

/**
 * `problem` with the line and column of the value its path names: the machine's own setting,
 * else the top-level one it inherits (the path then names that one), else the nearest enclosing
 * key that is written, else the machine's entry, else the top of the file (1:1; the value came
 * from a default or the environment).
 */
export function locateProblem(doc: Document, lines: LineCounter, problem: Problem): Problem {
  const {machine, rest} = splitPath(problem.path)
  const root = doc.contents
  const machineNode = machine === undefined ? undefined : nodeAt(root, ['machines', machine])
  for (let length = rest.length; length >= 1; length--) {
    const keys = rest.slice(0, length)
    if (machineNode !== undefined) {
      const own = positionOf(nodeAt(machineNode, keys), lines)
      if (own !== undefined) return {...problem, ...own}
    }
    const shared = positionOf(nodeAt(root, keys), lines)
    if (shared !== undefined) return {...problem, ...shared, path: length === rest.length ? rest.join('.') : problem.path}
  }
  return {...problem, ...(positionOf(machineNode, lines) ?? {line: 1, col: 1})}
}

/** Every problem placed in the parsed Vmfile (see locateProblem), sorted by position. */
export function locateProblems(parsed: Pick<ParsedVmfile, 'doc' | 'lines'>, problems: readonly Problem[]): Problem[] {
  return problems.map((problem) => locateProblem(parsed.doc, parsed.lines, problem)).sort((a, b) => a.line - b.line || a.col - b.col)
}
