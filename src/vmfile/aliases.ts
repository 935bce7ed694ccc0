import {isAlias, isCollection, isPair, visit, type Alias, type Document, type LineCounter, type Node} from 'yaml'

import type {Problem} from './validate.js'

/**
 * How many values a Vmfile may expand to once its aliases (`*a`) and merge keys (`<<: *a`) are
 * followed. Real Vmfiles hold a few hundred; ten aliases of ten aliases of ... (a "billion
 * laughs" file of 300 bytes) expand to millions and would hang every command that reads them.
 */
export const MAX_EXPANDED_VALUES = 10_000

/** The node each alias names: the nearest anchor of that name before it, in document order. */
export function aliasTargets(doc: Document): Map<Alias, Node> {
  const anchors = new Map<string, Node>()
  const targets = new Map<Alias, Node>()
  visit(doc, {
    Node: (_key, node) => {
      if (isAlias(node)) {
        const target = anchors.get(node.source)
        if (target !== undefined) targets.set(node, target)
      } else if (node.anchor !== undefined) {
        anchors.set(node.anchor, node)
      }
    },
  })
  return targets
}

/**
 * Counts the values the document expands to, following aliases and merge keys, without
 * expanding anything (each anchored node is counted once and remembered), so this takes time
 * linear in the file. Returns one problem, at the alias that crosses the limit or that refers
 * to a node containing itself; none when the document is safe to walk and convert.
 */
export function aliasExpansionProblems(doc: Document, lines: LineCounter, targets = aliasTargets(doc)): Problem[] {
  const sizes = new Map<Node, number>()
  const open = new Set<Node>()
  let problem: Problem | undefined
  const report = (node: Node, message: string): void => {
    const {line, col} = lines.linePos(node.range?.[0] ?? 0)
    problem = {line, col, path: '', message: `invalid YAML: ${message}`}
  }

  const size = (node: unknown): number => {
    if (problem !== undefined) return 0
    if (isAlias(node)) {
      const target = targets.get(node)
      if (target === undefined) return 1
      if (open.has(target)) {
        report(node, `alias *${node.source} refers to a value that contains it`)
        return 0
      }
      return size(target)
    }
    if (!isCollection(node)) return 1
    const known = sizes.get(node)
    if (known !== undefined) return known
    open.add(node)
    let total = 1
    for (const item of node.items) {
      for (const part of isPair(item) ? [item.key, item.value] : [item]) {
        total += size(part)
        if (problem === undefined && total > MAX_EXPANDED_VALUES) {
          const at = isAlias(part) ? part : (node as Node)
          report(
            at,
            `${isAlias(part) ? `alias *${part.source}` : 'this value'} expands the Vmfile to more than ${MAX_EXPANDED_VALUES} values (an alias or merge-key bomb?); write the values out instead`,
          )
        }
        if (problem !== undefined) break
      }
      if (problem !== undefined) break
    }
    open.delete(node)
    sizes.set(node, total)
    return total
  }

  size(doc.contents)
  return problem === undefined ? [] : [problem]
}
