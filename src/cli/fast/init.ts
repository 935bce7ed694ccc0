import path from 'node:path'

import {unreachableBoxWarnings} from '../../box/locate.js'
import type {CommandOutput} from '../command-output.js'
import {initVmfile, type InitResult} from '../../project/init.js'
import type {FastRequest} from './args.js'
import {runFastCommand} from './run.js'

export interface InitOptions {
  box: string | undefined
  boxVersion: string | undefined
  minimal: boolean
  force: boolean
  /** Where to write the Vmfile; "-": stdout. */
  output: string
}

/** Where `vm init` writes the Vmfile when not told (--output). */
export const DEFAULT_INIT_OUTPUT = 'Vmfile'

export type InitOutcome = Omit<InitResult, 'content'> & {content?: string}

/** `vm init [BOX]` once its arguments are parsed (src/commands/init.ts and the fast path). */
export async function initProject(output: CommandOutput, cwd: string, options: InitOptions): Promise<InitOutcome> {
  const result = await initVmfile(cwd, options.output, {
    box: options.box,
    boxVersion: options.boxVersion,
    minimal: options.minimal,
    force: options.force,
  })
  const dir = result.path === '-' ? cwd : path.dirname(result.path)
  for (const warning of await unreachableBoxWarnings([{machine: 'default', box: result.box, boxVersion: options.boxVersion}], dir))
    output.warn(warning)
  if (result.path === '-') {
    if (output.jsonEnabled()) return result
    process.stdout.write(result.content)
    return result
  }
  output.say(`Wrote ${result.path} (box ${result.box}). Next: vm validate, then vm up.`)
  const {content: _content, ...rest} = result
  return rest
}

/** The fast path's entry (dist/fast-init.cjs); defaults as src/commands/init.ts's flags give them. */
export function runFast(request: FastRequest): Promise<number> {
  return runFastCommand(request, (output, cwd) =>
    initProject(output, cwd, {
      box: request.args[0],
      boxVersion: request.values['box-version'],
      minimal: request.booleans.minimal === true,
      force: request.booleans.force === true,
      output: request.values.output ?? DEFAULT_INIT_OUTPUT,
    }),
  )
}
