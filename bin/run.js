#!/usr/bin/env node
import module from 'node:module'
import {fileURLToPath} from 'node:url'

// Node's on-disk cache of compiled code (Node >= 22.1; a no-op where it does not exist).
module.enableCompileCache?.()

const [first, ...rest] = process.argv.slice(2)
if (first === '--version') {
  // `vm --version` needs nothing of oclif: print the same line without loading it.
  const {printVersion} = await import('../dist/version.js')
  await printVersion(new URL('../package.json', import.meta.url))
} else {
  // `vm ssh [NAME] [-c COMMAND]` over a live shared connection needs no oclif either
  // (src/cli/ssh-fast-path.ts); it declines, having started nothing, whenever the full command must run.
  const code = first === 'ssh' ? await (await import('../dist/ssh-fast.js')).runFastSsh(rest) : undefined
  if (code === undefined) {
    const {execute} = await import('../dist/commands.js')
    // vm has no plugins to install: oclif need not look for user or dev plugins.
    await execute({loadOptions: {root: fileURLToPath(new URL('..', import.meta.url)), userPlugins: false, devPlugins: false}})
  } else {
    process.exitCode = code
  }
}
