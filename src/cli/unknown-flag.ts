import {UsageError} from '../errors/errors.js'
import {suggest} from '../vmfile/suggest.js'

/** What we need of a command's flag definitions: their names, and which are hidden. */
export type FlagNames = Record<string, {hidden?: boolean | undefined}>

/**
 * The usage error for flags a command does not have (oclif reports them as "Nonexistent
 * flag"): names them, suggests the closest existing flag for each, and says where to look.
 * `typed` holds the flags as written ("--jsn", "--nmae=web", "-x").
 */
export function unknownFlagError(commandId: string, typed: readonly string[], flags: FlagNames): UsageError {
  const command = `vm ${commandId.replaceAll(':', ' ')}`.trim()
  const names = Object.entries(flags)
    .filter(([, flag]) => flag.hidden !== true)
    .map(([name]) => `--${name}`)
  const shown = typed.map((flag) => flag.split('=')[0] ?? flag)
  // Only long flags get a guess: every one-letter flag is one edit away from every other.
  const guesses = shown.flatMap((flag) => {
    const guess = flag.startsWith('--')
      ? suggest(
          flag,
          names.filter((name) => name.startsWith('--')),
        )
      : undefined
    return guess === undefined ? [] : [guess]
  })
  const listed = shown.join(', ')
  const suggestions = [...new Set(guesses)]
  return new UsageError(`Unknown flag${shown.length === 1 ? '' : 's'} ${listed} for "${command}"`, {
    code: 'UNKNOWN_FLAG',
    hint: `${suggestions.length === 0 ? '' : `Did you mean ${suggestions.join(', ')}? `}Run "vm help ${command.slice(3)}" for its flags.`,
    data: {flags: shown, suggestions},
  })
}

/** oclif's parse error for flags the command does not define, recognised by its shape. */
export function nonexistentFlags(error: unknown): string[] | undefined {
  if (typeof error !== 'object' || error === null || !('parse' in error) || !('flags' in error)) return undefined
  const {flags} = error as {flags?: unknown}
  if (!Array.isArray(flags) || !flags.every((flag) => typeof flag === 'string')) return undefined
  return flags as string[]
}
