import {causeChain, VmError} from './errors.js'
import {ExitCode} from './exit-codes.js'
import type {Style} from './style.js'

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
    (error instanceof Error &&
      /Flag|Arg|Missing \d+ required|Unexpected argument|Nonexistent/i.test(error.constructor.name + message) &&
      oclif !== undefined)
  ) {
    return {
      name: 'UsageError',
      code: 'USAGE',
      kind: 'usage',
      message: message.trim(),
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

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code
    return code !== undefined && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message
  }
  return String(cause)
}

/** The human rendering: message, details, cause chain, what to do next; stack with debug. */
export function renderError(error: unknown, style: Style, debug = false): string {
  const info = classifyError(error)
  const lines = [`${style.red(style.bold('Error:'))} ${info.message}`]
  for (const detail of info.details) lines.push(`  ${detail}`)
  for (const cause of causeChain(error)) lines.push(`  ${style.dim('caused by:')} ${describeCause(cause)}`)
  if (info.hint !== undefined) lines.push(`${style.cyan('Next:')} ${info.hint}`)
  if (debug && error instanceof Error && error.stack !== undefined) lines.push(style.dim(error.stack))
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
