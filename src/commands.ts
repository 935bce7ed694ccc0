import Init from './commands/init.js'
import Validate from './commands/validate.js'

/**
 * Every command, by id ("box add" is "box:add"). oclif's explicit command discovery reads this
 * object from the bundle, so start-up imports one file instead of globbing command files.
 */
export const COMMANDS = {
  init: Init,
  validate: Validate,
}

export {execute} from '@oclif/core'
export {commandNotFound} from './cli/command-not-found.js'
