import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {checkVmfile, formatProblem, parseVmfile} from '../../src/vmfile/index.js'

const dir = path.join(import.meta.dirname, '../fixtures/vmfile/invalid')

/** Each fixture holds one mistake and, on its first line, the exact message expected. */
describe('broken Vmfiles give one located message each', () => {
  for (const name of readdirSync(dir).filter((file) => file.endsWith('.yml'))) {
    it(name, () => {
      const text = readFileSync(path.join(dir, name), 'utf8')
      const expected = /^# expect: (.*)$/m.exec(text)?.[1]
      expect(expected, 'fixture has an "# expect:" line').toBeDefined()
      const problems = checkVmfile(parseVmfile(text, 'Vmfile'))
      expect(problems.map((problem) => formatProblem(problem))).toEqual([expected])
    })
  }
})

describe('every problem at once', () => {
  it('reports three mistakes as three located messages, in file order', () => {
    const text = ['box: vmfile/tiny', 'cpus: many', 'memroy: 1G', 'forwarded_ports:', '  - {guest: 80, host: 99999}', ''].join('\n')
    const problems = checkVmfile(parseVmfile(text)).map((problem) => formatProblem(problem))
    expect(problems).toEqual([
      'Vmfile:2:7 cpus: must be a whole number, not "many"',
      'Vmfile:3:1 memroy: unknown key (did you mean "memory"?)',
      'Vmfile:5:23 forwarded_ports[0].host: must be at most 65535, not 99999',
    ])
  })

  it('finds problems inside YAML anchors and merge keys', () => {
    const text = ['base: &base', '  cpus: 1', 'box: vmfile/tiny', 'machines:', '  web:', '    <<: {cpus: 0}', ''].join('\n')
    const problems = checkVmfile(parseVmfile(text)).map((problem) => formatProblem(problem))
    expect(problems).toContain('Vmfile:1:1 base: unknown key')
    expect(problems.some((line) => line.includes('machines.web.cpus: must be at least 1, not 0'))).toBe(true)
  })
})
