import type {Hook} from '@oclif/core'

import {UsageError} from '../errors/errors.js'
import {renderError} from './render-error.js'
import {colorsEnabled, createStyle} from './style.js'
import {ExitCode} from '../errors/exit-codes.js'
import {suggest} from '../vmfile/suggest.js'

/**
 * The usage error for words that name no command: suggests the closest command id. `typed`
 * and `ids` use spaces ("box add").
 */
export function commandNotFoundError(typed: string, ids: readonly string[]): UsageError {
  const guess = suggest(typed, ids)
  return new UsageError(`"${typed}" is not a vm command`, {
    code: 'COMMAND_NOT_FOUND',
    hint:
      guess === undefined
        ? 'Run "vm help" for the list of commands.'
        : `Did you mean "vm ${guess}"? Run "vm help" for the list of commands.`,
  })
}

/** "vm valdate" -> a usage error that suggests the closest command, exit 2. */
export const commandNotFound: Hook<'command_not_found'> = async function (options) {
  const typed = options.id.replaceAll(':', ' ')
  const ids = options.config.commandIDs.map((id) => id.replaceAll(':', ' '))
  const error = commandNotFoundError(typed, ids)
  if (options.argv?.includes('--json')) {
    process.stdout.write(
      `${JSON.stringify({status: ExitCode.usage, error: {name: error.name, code: error.code, kind: error.kind, message: error.message, hint: error.hint, details: [], causes: []}, warnings: []}, null, 2)}\n`,
    )
  } else {
    process.stderr.write(`${renderError(error, createStyle(colorsEnabled(process.stderr)))}\n`)
  }
  process.exit(ExitCode.usage)
}
