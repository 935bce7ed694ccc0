import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {LineCounter, parseDocument, type Document} from 'yaml'

import {UserError} from '../cli/errors.js'
import type {Problem} from './validate.js'

export const VMFILE_NAME = 'Vmfile'

/** Nearest directory at or above `start` holding a Vmfile, like git finds .git. */
export function findVmfile(start: string): string | undefined {
  let dir = path.resolve(start)
  for (;;) {
    const candidate = path.join(dir, VMFILE_NAME)
    if (existsSync(candidate)) return candidate
    const parent = path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

export interface ParsedVmfile {
  file: string
  text: string
  doc: Document
  lines: LineCounter
  /** YAML syntax problems; the document is unusable when there are any. */
  syntaxProblems: Problem[]
}

/** Parses Vmfile text; syntax errors come back as located problems, never thrown. */
export function parseVmfile(text: string, file = VMFILE_NAME): ParsedVmfile {
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, merge: true, prettyErrors: false, uniqueKeys: false})
  const syntaxProblems = doc.errors.map((error) => {
    const offset = error.pos[0]
    const {line, col} = lines.linePos(offset)
    const message = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.message
    return {line, col, path: '', message: `invalid YAML: ${message}`}
  })
  return {file, text, doc, lines, syntaxProblems}
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
