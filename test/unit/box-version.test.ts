import {describe, expect, it} from 'vitest'

import {compareVersions, newestSatisfying, parseConstraint, satisfies} from '../../src/box/version.js'

describe('box version constraints (Vagrant semantics)', () => {
  // The examples of Vagrant's documentation on box versioning and version constraints.
  it.each([
    ['1.0.0', '= 1.0.0', true],
    ['1.0.1', '= 1.0.0', false],
    ['1.0.0', '1.0.0', true],
    ['1.0.0', '!= 1.0.0', false],
    ['1.1.0', '> 1.0', true],
    ['1.0.0', '> 1.0', false],
    ['0.9', '< 1.0', true],
    ['1.0', '>= 1.0', true],
    ['1.0', '<= 1.0', true],
    ['1.1', '~> 1.0', true],
    ['1.9.9', '~> 1.0', true],
    ['2.0', '~> 1.0', false],
    ['1.1.9', '~> 1.1.0', true],
    ['1.2.0', '~> 1.1.0', false],
    ['1.5', '>= 1.0, < 1.5', false],
    ['1.4.9', '>= 1.0, < 1.5', true],
    ['1.2', '>= 1.0, < 2', true],
    ['2', '>= 1.0, < 2', false],
    ['1.0.0', '~> 1', true],
    ['2.0.0', '~> 1', false],
  ])('%s satisfies "%s": %s', (version, constraint, expected) => {
    expect(satisfies(version, constraint)).toBe(expected)
  })

  it('compares numerically, with pre-release segments before releases', () => {
    expect(compareVersions('1.10', '1.9')).toBeGreaterThan(0)
    expect(compareVersions('1.0', '1.0.0')).toBe(0)
    expect(compareVersions('1.0.beta', '1.0')).toBeLessThan(0)
  })

  it('picks the newest satisfying version', () => {
    const versions = ['0.9', '1.0.0', '1.2.0', '1.10.0', '2.0.0']
    expect(newestSatisfying(versions)).toBe('2.0.0')
    expect(newestSatisfying(versions, '~> 1.0')).toBe('1.10.0')
    expect(newestSatisfying(versions, '< 1')).toBe('0.9')
    expect(newestSatisfying(versions, '> 3')).toBeUndefined()
  })

  it('rejects malformed constraints with the bad part named', () => {
    expect(() => parseConstraint('>> 1.0')).toThrowError('">> 1.0" is not a requirement such as ">= 1.2"')
    expect(() => parseConstraint('>= one')).toThrowError('"one" in ">= one" is not a version such as 1.2.3')
    expect(() => parseConstraint('')).toThrowError('the constraint is empty')
  })
})
