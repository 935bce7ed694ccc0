#!/usr/bin/env node
// CommonJS (bin/package.json), unlike the rest of the package: an ES module entry point starts
// Node's ES module loader first, which `vm ssh`'s fast path never needs (~10-20 ms).
/* global require, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS file */
const module_ = require('node:module')
const path = require('node:path')
const {pathToFileURL} = require('node:url')

// Node's on-disk cache of compiled code (Node >= 22.1; a no-op where it does not exist).
module_.enableCompileCache?.()

const root = path.join(__dirname, '..')

async function main() {
  const [first, ...rest] = process.argv.slice(2)
  if (first === '--version') {
    // `vm --version` needs nothing of oclif: print the same line without loading it.
    await require('../dist/version.cjs').printVersion(pathToFileURL(path.join(root, 'package.json')))
    return
  }
  // `vm ssh [NAME] [-c COMMAND]` over a live shared connection needs no oclif either
  // (src/cli/ssh-fast-path.ts), nor do the everyday forms of `vm status`, `vm validate`,
  // `vm init` and `vm global-status` (src/cli/fast-entry.ts). Each declines, having started nothing, whenever the
  // full command must run; VM_NO_FAST=1 always runs the full command.
  let code
  if (process.env.VM_NO_FAST !== '1') {
    if (first === 'ssh') code = await require('../dist/ssh-fast.cjs').runFastSsh(rest)
    else if (first === 'status' || first === 'validate' || first === 'init' || first === 'global-status')
      code = await require('../dist/fast.cjs').runFast(first, rest)
  }
  if (code !== undefined) {
    process.exitCode = code
    return
  }
  const {execute} = await import(pathToFileURL(path.join(root, 'dist/commands.js')).href)
  // vm has no plugins to install: oclif need not look for user or dev plugins.
  await execute({loadOptions: {root, userPlugins: false, devPlugins: false}})
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`)
  process.exitCode = 1
})
