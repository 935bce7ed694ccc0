import type {CommandOutput} from '../command-output.js'
import {validateProject, type ValidateResult} from '../../vmfile/index.js'
import type {FastRequest} from './args.js'
import {runFastCommand} from './run.js'

/** `vm validate [FILE]` once its arguments are parsed (src/commands/validate.ts and the fast path). */
export async function validateVmfile(output: CommandOutput, cwd: string, file: string | undefined): Promise<ValidateResult> {
  const result = await validateProject(cwd, file, (text) => output.warn(text))
  output.say(
    output.out.green('Vmfile is valid'),
    ` (${result.machines.length === 1 ? 'machine' : 'machines'}: ${result.machines.join(', ')})`,
  )
  return result
}

/** The fast path's entry (dist/fast-validate.cjs). */
export function runFast(request: FastRequest): Promise<number> {
  return runFastCommand(request, (output, cwd) => validateVmfile(output, cwd, request.args[0]))
}
