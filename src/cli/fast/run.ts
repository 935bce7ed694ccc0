import {setWarningSink} from '../../state/warnings.js'
import {CommandOutput} from '../command-output.js'
import type {FastRequest} from './args.js'

/**
 * Runs one command of bin/run.js's fast path as BaseCommand runs it under oclif (oclif's
 * Command._run): warnings of the layers below routed to the command's output, the result as
 * JSON with --json, an error printed by the same CommandOutput; resolves with the exit code.
 */
export async function runFastCommand(
  request: FastRequest,
  body: (output: CommandOutput, cwd: string) => Promise<unknown>,
): Promise<number> {
  const output = new CommandOutput(() => request.json)
  // As under oclif: it drops this before every command (so that a child vm is not "redirected"),
  // and a reader of stdout that goes away (vm status | head -1) is no error.
  delete process.env.VM_REDIRECTED
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
  })
  setWarningSink((text) => output.warn(text))
  let result: unknown
  try {
    result = await body(output, request.cwd ?? process.cwd())
  } catch (error) {
    return output.fail(error, process.env.VM_DEBUG === '1')
  }
  if (result && request.json) output.writeJson(output.successJson(result))
  return 0
}
