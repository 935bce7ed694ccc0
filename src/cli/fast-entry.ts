import path from 'node:path'

import {packageRoot} from '../state/package-root.js'
import {escapeControl} from './terminal-text.js'
import {fastPathBlockedBy, isFastCommand, parseFastArgs, type FastRequest} from './fast/args.js'
import {requireCached} from './code-cache.js'

/**
 * What bin/run.js requires, before oclif, for `vm status`, `vm validate`, `vm init`
 * and `vm global-status` (dist/fast.cjs): it parses the everyday forms of their arguments (fast/args.ts) and runs the
 * command from a bundle of its own, dist/fast-COMMAND.cjs (src/cli/fast/COMMAND.ts), compiled from
 * the V8 code cache: neither oclif (its config, plugins and manifest) nor the code of other
 * commands is loaded. The command's work and printing are the functions the full command calls.
 * Resolves undefined, having run nothing, when the full command must run (VM_DEBUG=1 says why).
 */
export async function runFast(command: string | undefined, argv: readonly string[]): Promise<number | undefined> {
  const debug = process.env.VM_DEBUG === '1'
  if (!isFastCommand(command)) return undefined
  const blocked = fastPathBlockedBy(process.env)
  const request = blocked === undefined ? parseFastArgs(command, argv) : undefined
  if (request === undefined) {
    if (debug)
      process.stderr.write(
        `vm: ${command} fast path not taken (${escapeControl(blocked ?? 'arguments it does not handle')}): running the full command\n`,
      )
    return undefined
  }
  if (debug) process.stderr.write(`vm: ${command} fast path\n`)
  const bundle = requireCached(path.join(packageRoot(), 'dist', `fast-${command}.cjs`)) as {runFast(request: FastRequest): Promise<number>}
  return bundle.runFast(request)
}
