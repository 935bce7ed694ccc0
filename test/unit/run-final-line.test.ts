import {describe, expect, it} from 'vitest'

import {runProgram} from '../../src/process/run.js'

describe('runProgram: the line a child prints last', () => {
  it('once the line is there, the run resolves without waiting for the child to end', async () => {
    const started = Date.now()
    const result = await runProgram('/bin/sh', ['-c', 'echo work; echo "state: done"; sleep 5; exit 3'], {
      finalLine: /^state: (done|failed)$/m,
    })
    expect(result).toEqual({code: 0, stdout: 'work\nstate: done\n', stderr: ''})
    expect(Date.now() - started).toBeLessThan(4000)
  })

  it('a line not ended yet is not the last; without it the run ends as the child does', async () => {
    const partial = await runProgram('/bin/sh', ['-c', 'printf "state: do"; sleep 0.2; echo ne; echo more'], {finalLine: /^state: done$/m})
    expect(partial.stdout.startsWith('state: done\n')).toBe(true)
    await expect(runProgram('/bin/sh', ['-c', 'echo work; exit 3'], {finalLine: /^state: done$/m})).rejects.toThrow('exited with status 3')
  })
})
