import {describe, expect, it} from 'vitest'

import {UserError} from '../../src/errors/errors.js'
import {checkVmfile, formatProblem, parseVmfile, resolveVmfileText} from '../../src/vmfile/index.js'

/** Ten times ten times ... "lol": 254 bytes that expand to half a million values. */
const laughs = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'box: vmfile/tiny',
  '',
].join('\n')

/** The same through merge keys (<<), which follow aliases too. */
const merges = [
  'box: vmfile/tiny',
  'x0: &x0 {a: 1, b: 2}',
  ...Array.from({length: 12}, (_, i) => `x${i + 1}: &x${i + 1} {<<: [*x${i}, *x${i}, *x${i}, *x${i}], c${i + 1}: 1}`),
  '',
].join('\n')

function timed<T>(work: () => T): {value: T; ms: number} {
  const started = performance.now()
  const value = work()
  return {value, ms: performance.now() - started}
}

describe('YAML alias bombs are refused before anything expands them', () => {
  it('a billion-laughs file fails fast, at the alias that overflows', () => {
    const {value: problems, ms} = timed(() => checkVmfile(parseVmfile(laughs)).map((problem) => formatProblem(problem)))
    expect(ms).toBeLessThan(1000)
    expect(problems).toEqual([
      'Vmfile:5:11 invalid YAML: alias *d expands the Vmfile to more than 10000 values (an alias or merge-key bomb?); write the values out instead',
    ])
  })

  it('a merge-key bomb fails fast, at the line where it overflows', () => {
    const {value: problems, ms} = timed(() => checkVmfile(parseVmfile(merges)).map((problem) => formatProblem(problem)))
    expect(ms).toBeLessThan(1000)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^Vmfile:8:\d+ invalid YAML: alias \*x5 expands the Vmfile to more than 10000 values/)
  })

  it('every command that loads the Vmfile gets the same error, fast', () => {
    for (const text of [laughs, merges]) {
      const {ms} = timed(() => expect(() => resolveVmfileText(text, '/p/Vmfile')).toThrow(UserError))
      expect(ms).toBeLessThan(1000)
    }
  })

  it('an alias inside the value it names is a located problem, not a crash', () => {
    const problems = checkVmfile(parseVmfile('box: vmfile/tiny\nprovision: &p\n  - *p\n')).map((problem) => formatProblem(problem))
    expect(problems).toEqual(['Vmfile:3:5 invalid YAML: alias *p refers to a value that contains it'])
  })

  it('ordinary anchors and merge keys still work', () => {
    const text = [
      'box: vmfile/tiny',
      'machines:',
      '  web: &base {cpus: 2, memory: 512M, forwarded_ports: [{guest: 80, host: 8080}]}',
      '  db: {<<: *base, forwarded_ports: [{guest: 5432, host: 5432}]}',
      '',
    ].join('\n')
    const config = resolveVmfileText(text, '/p/Vmfile')
    expect(config.machines.map((machine) => [machine.name, machine.cpus, machine.memory])).toEqual([
      ['web', 2, 512],
      ['db', 2, 512],
    ])
  })
})
