import path from 'node:path'

import {packageRoot} from '../state/package-root.js'
import {requireCached} from './code-cache.js'

/**
 * dist/commands.js, the module oclif reads COMMANDS and the command_not_found hook from: a
 * small ES module that loads the whole CLI (src/commands.ts and everything it imports, lazily
 * or not), bundled as one CommonJS file (dist/app.cjs), through the V8 code cache
 * (code-cache.ts). Node 20 caches no compiled ES modules: the CLI's own code as ES module
 * chunks was parsed and compiled at every start-up. In one CommonJS file, a module imported
 * lazily is still initialised only when a command first imports it.
 */
// One cache per command (the first word: `box add` and `box list` share one); see code-cache.ts.
const app = requireCached(path.join(packageRoot(), 'dist', 'app.cjs'), process.argv[2] ?? 'none') as typeof import('../commands.js')

export const COMMANDS = process.env.VM_COMMAND_CLASSES === '1' ? await app.loadClasses() : app.deferredCommands()
export const {execute, commandNotFound} = app
