#!/usr/bin/env node
import module from 'node:module'
import {fileURLToPath} from 'node:url'

// Node's on-disk cache of compiled code (Node >= 22.1; a no-op where it does not exist).
module.enableCompileCache?.()

// `vm --version` needs nothing of oclif: print the same line without loading it.
if (process.argv[2] === '--version') {
  const {printVersion} = await import('../dist/version.js')
  await printVersion(new URL('../package.json', import.meta.url))
} else {
  const {execute} = await import('../dist/commands.js')
  // vm has no plugins to install: oclif need not look for user or dev plugins.
  await execute({loadOptions: {root: fileURLToPath(new URL('..', import.meta.url)), userPlugins: false, devPlugins: false}})
}
