import {ExitCode, type ExitCodeName} from './exit-codes.js'

/** Who has to act on an error: the user, the maintainer of another program, or us. */
export type ErrorKind = 'user' | 'usage' | 'external' | 'internal'

export interface VmErrorOptions {
  /** What the reader should do next. */
  hint?: string
  cause?: unknown
  /** A stable, machine-readable identifier, e.g. VMFILE_INVALID. */
  code?: string
  /** Extra lines printed under the message (one problem each). */
  details?: string[]
  exit?: ExitCodeName
  /** Structured data for --json output (e.g. the list of problems). */
  data?: unknown
}

/**
 * Base of every error vm raises on purpose. Each class names itself (`name`) instead of
 * relying on constructor.name, which the minified bundle renames ("$"): the name is part of
 * the --json output.
 */
export class VmError extends Error {
  override name = 'VmError'
  readonly kind: ErrorKind = 'user'
  readonly hint: string | undefined
  readonly code: string
  readonly details: string[]
  readonly exitName: ExitCodeName
  readonly data: unknown

  constructor(message: string, options: VmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.hint = options.hint
    this.code = options.code ?? 'FAILED'
    this.details = options.details ?? []
    this.exitName = options.exit ?? 'failure'
    this.data = options.data
  }

  get exitCode(): number {
    return ExitCode[this.exitName]
  }
}

/** The user must fix something: a file, a flag, the environment. */
export class UserError extends VmError {
  override name = 'UserError'
  override readonly kind = 'user'
}

/** The command line is wrong. */
export class UsageError extends VmError {
  override name = 'UsageError'
  override readonly kind = 'usage'
  constructor(message: string, options: VmErrorOptions = {}) {
    super(message, {code: 'USAGE', ...options, exit: 'usage'})
  }
}

/** Another program (qemu, ssh, qemu-img ...) failed; carries what it said. */
export class ExternalError extends VmError {
  override name = 'ExternalError'
  override readonly kind = 'external'
  readonly program: string
  readonly args: readonly string[]
  readonly stderrTail: string

  constructor(message: string, program: string, args: readonly string[], stderrTail: string, options: VmErrorOptions = {}) {
    super(message, {code: 'EXTERNAL', ...options})
    this.program = program
    this.args = args
    this.stderrTail = stderrTail
  }
}

/** What a failed program said on stderr (its tail), or '' for any other error. */
export function stderrOf(error: unknown): string {
  return error instanceof ExternalError ? error.stderrTail : ''
}

/** A bug in vm itself. */
export class InternalError extends VmError {
  override name = 'InternalError'
  override readonly kind = 'internal'
  constructor(message: string, options: VmErrorOptions = {}) {
    super(message, {
      code: 'INTERNAL',
      hint: 'This is a bug in vm; please report it with the output of --debug.',
      ...options,
      exit: 'internal',
    })
  }
}

/** The chain of causes below an error, outermost first, without the error itself. */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = []
  const causeOf = (value: unknown): unknown =>
    typeof value === 'object' && value !== null && 'cause' in value ? (value as {cause?: unknown}).cause : undefined
  let current = causeOf(error)
  while (current !== undefined && current !== null && chain.length < 10) {
    chain.push(current)
    current = causeOf(current)
  }
  return chain
}
