import {causeChain, VmError} from '../errors/errors.js'
import {ExitCode} from '../errors/exit-codes.js'
import type {Style} from './style.js'
import {escapeControl} from './terminal-text.js'

/** The JSON shape of a failed command (stdout in --json mode). */
export interface ErrorJson {
  status: number
  error: {
    name: string
    code: string
    kind: string
    message: string
    hint?: string
    details: string[]
    causes: string[]
    data?: unknown
  }
  warnings: string[]
}

interface OclifLikeError {
  oclif?: {exit?: number}
  code?: string
}

/** Normalises anything thrown into a VmError-like view: kind, exit code, hint. */
export function classifyError(error: unknown): {
  name: string
  code: string
  kind: string
  message: string
  hint: string | undefined
  details: string[]
  exitCode: number
} {
  if (error instanceof VmError) {
    return {
      name: error.name,
      code: error.code,
      kind: error.kind,
      message: error.message,
      hint: error.hint,
      details: error.details,
      exitCode: error.exitCode,
    }
  }
  const oclif = (error as OclifLikeError | undefined)?.oclif
  const message = error instanceof Error ? error.message : String(error)
  if (
    oclif?.exit === 2 ||
    // oclif's parse errors carry `parse`; class names are not used (the bundle minifies them).
    (oclif !== undefined && typeof error === 'object' && error !== null && 'parse' in error) ||
    (oclif !== undefined && /Flag|Arg|Missing \d+ required|Unexpected argument|Nonexistent/i.test(message))
  ) {
    return {
      name: 'UsageError',
      code: 'USAGE',
      kind: 'usage',
      // oclif appends "See more help with --help" on a line of its own; the hint says it.
      message: message.replace(/\n\s*See more help with --help\s*$/, '').trim(),
      hint: 'Run the command with --help to see its arguments and flags.',
      details: [],
      exitCode: ExitCode.usage,
    }
  }
  if (oclif !== undefined) {
    return {
      name: error instanceof Error ? error.name : 'Error',
      code: (error as OclifLikeError).code ?? 'FAILED',
      kind: 'user',
      message: message.trim(),
      hint: undefined,
      details: [],
      exitCode: oclif.exit ?? ExitCode.failure,
    }
  }
  return {
    name: error instanceof Error ? error.name : 'Error',
    code: 'INTERNAL',
    kind: 'internal',
    message,
    hint: 'This is a bug in vm; please report it with the output of --debug.',
    details: [],
    exitCode: ExitCode.internal,
  }
}

/**
 * One cause as text: its message and, when it has one, its code ("ENOSPC"). Causes are not
 * always Errors (a QMP reply, a plain object from a library): those show their message, desc
 * or code, never "[object Object]".
 */
export function describeCause(cause: unknown): string {
  if (cause instanceof Error || (typeof cause === 'object' && cause !== null)) {
    const record = cause as {message?: unknown; desc?: unknown; code?: unknown; name?: unknown}
    const text = [record.message, record.desc].find((value) => typeof value === 'string' && value !== '') as string | undefined
    const code = typeof record.code === 'string' || typeof record.code === 'number' ? String(record.code) : undefined
    const name = typeof record.name === 'string' && record.name !== 'Error' ? record.name : undefined
    if (text !== undefined) return code !== undefined && !text.includes(code) ? `${text} (${code})` : text
    if (code !== undefined) return name === undefined ? code : `${name} (${code})`
    if (name !== undefined) return name
    if (cause instanceof Error) return 'Error'
    try {
      return JSON.stringify(cause) ?? String(cause)
    } catch {
      return Object.prototype.toString.call(cause)
    }
  }
  return String(cause)
}

/**
 * The human rendering: message, details, cause chain, what to do next; stack with debug.
 * Every piece is escaped before it is styled and joined: a control character in a message
 * (a Vmfile value, an archive entry name) prints as \x1b or \n and never acts on the terminal.
 */
export function renderError(error: unknown, style: Style, debug = false): string {
  const info = classifyError(error)
  const lines = [`${style.red(style.bold('Error:'))} ${escapeControl(info.message)}`]
  for (const detail of info.details) lines.push(`  ${escapeControl(detail)}`)
  for (const cause of causeChain(error)) lines.push(`  ${style.dim('caused by:')} ${escapeControl(describeCause(cause))}`)
  if (info.hint !== undefined) lines.push(`${style.cyan('Next:')} ${escapeControl(info.hint)}`)
  if (debug && error instanceof Error && error.stack !== undefined) {
    for (const line of error.stack.split('\n')) lines.push(style.dim(escapeControl(line)))
  }
  return lines.join('\n')
}

export function errorToJson(error: unknown, warnings: string[] = []): ErrorJson {
  const info = classifyError(error)
  return {
    status: info.exitCode,
    error: {
      name: info.name,
      code: info.code,
      kind: info.kind,
      message: info.message,
      ...(info.hint === undefined ? {} : {hint: info.hint}),
      details: info.details,
      causes: causeChain(error).map(describeCause),
      ...(error instanceof VmError && error.data !== undefined ? {data: error.data} : {}),
    },
    warnings,
  }
}
