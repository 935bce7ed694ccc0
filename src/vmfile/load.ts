import {readFileSync} from 'node:fs'
import path from 'node:path'

import {LineCounter, parseDocument, visit, type Document} from 'yaml'

import {UserError} from '../errors/errors.js'
import {aliasExpansionProblems} from './aliases.js'
import type {Problem} from './validate.js'

// Finding the Vmfile needs no YAML: its own module, which `vm ssh`'s fast path loads alone.
import {findVmfile, VMFILE_NAME} from './find.js'

export {findVmfile, VMFILE_NAME}

export interface ParsedVmfile {
  file: string
  text: string
  doc: Document
  lines: LineCounter
  /** YAML syntax problems; the document is unusable when there are any. */
  syntaxProblems: Problem[]
}

/**
 * Parses Vmfile text; syntax errors come back as located problems, never thrown. A document
 * whose aliases expand beyond MAX_EXPANDED_VALUES is a syntax problem too, found before
 * anything expands it (validation, toJS).
 */
export function parseVmfile(text: string, file = VMFILE_NAME): ParsedVmfile {
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, merge: true, prettyErrors: false, uniqueKeys: false})
  const syntaxProblems = locateErrors(doc, lines)
  if (syntaxProblems.length === 0) syntaxProblems.push(...aliasExpansionProblems(doc, lines))
  return {file, text, doc, lines, syntaxProblems}
}

/**
 * The parser's errors as problems. The parser notices an unclosed quote only where the file
 * ends; the problem is placed where the quote opened instead, and errors that merely follow
 * from it (at the same place) are dropped.
 */
function locateErrors(doc: Document, lines: LineCounter): Problem[] {
  const problems: Problem[] = []
  const unclosedAt = new Set<number>()
  for (const error of doc.errors) {
    let offset = error.pos[0]
    if (unclosedAt.has(offset)) continue
    let message = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.message
    if (error.code === 'MISSING_CHAR' && /quote/i.test(message)) {
      const opening = openingQuote(doc, offset)
      if (opening !== undefined) {
        unclosedAt.add(offset)
        offset = opening
        message = `${message}: the quote opened here is never closed`
      }
    }
    const {line, col} = lines.linePos(offset)
    problems.push({line, col, path: '', message: `invalid YAML: ${message}`})
  }
  return problems
}

/** Where the quoted scalar that runs to `end` (the unclosed one) starts. */
function openingQuote(doc: Document, end: number): number | undefined {
  let start: number | undefined
  visit(doc, {
    Scalar: (_key, node) => {
      const range = node.range ?? undefined
      if ((node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && range !== undefined && range[0] < end && range[1] >= end) {
        start = range[0]
      }
    },
  })
  return start
}

/** Reads and parses the Vmfile at `file`. */
export function readVmfile(file: string): ParsedVmfile {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new UserError(`Cannot read ${file}`, {
      cause: error,
      code: 'VMFILE_UNREADABLE',
      hint: 'Check that the file exists and is readable.',
    })
  }
  return parseVmfile(text, file)
}

/** Finds and reads the project's Vmfile, or explains how to make one. */
export function locateVmfile(cwd: string): ParsedVmfile {
  const file = findVmfile(cwd)
  if (file === undefined) {
    throw new UserError(`No Vmfile in ${path.resolve(cwd)} or any parent directory`, {
      code: 'VMFILE_NOT_FOUND',
      hint: 'Run "vm init" to write one, or pass --cwd with the project directory.',
    })
  }
  return readVmfile(file)
}
