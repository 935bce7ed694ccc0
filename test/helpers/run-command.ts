import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {vi} from 'vitest'

export interface CommandOutput {
  stdout: string
  stderr: string
  exitCode: number
}

const root = path.resolve(import.meta.dirname, '../..')

/**
 * Runs an oclif command class in-process, the way oclif/test recommends for ESM sources
 * (Cmd.run(argv)), capturing stdout, stderr and the exit code it sets.
 */
export async function runCommand(command: {run(argv: string[], root: string): Promise<unknown>}, argv: string[]): Promise<CommandOutput> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk)
    return true
  })
  const previous = process.exitCode
  process.exitCode = 0
  let exitCode = 0
  try {
    await command.run(argv, root)
  } catch (error) {
    const exit = (error as {oclif?: {exit?: number}}).oclif?.exit
    if (exit === undefined) throw error
    exitCode = exit
  } finally {
    out.mockRestore()
    err.mockRestore()
    exitCode = exitCode || Number(process.exitCode ?? 0)
    process.exitCode = previous
  }
  return {stdout, stderr, exitCode}
}

/** A fresh temporary directory, with VM_HOME pointing inside it so nothing touches $HOME. */
export function tempProject(prefix = 'vm-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  process.env.VM_HOME = path.join(dir, '.vm-home')
  return dir
}
