/**
 * Box versions and constraints with Vagrant's semantics: versions are dot-separated
 * segments (numeric segments compare as numbers; a non-numeric segment marks a pre-release
 * and sorts before any number), constraints are comma-joined requirements using
 * =, !=, >, <, >=, <= and ~> (pessimistic: "~> 1.2" means ">= 1.2, < 2.0").
 */

export type Operator = '!=' | '<' | '<=' | '=' | '>' | '>=' | '~>'

export interface Requirement {
  operator: Operator
  version: string
}

const VERSION = /^[0-9]+(?:\.[0-9A-Za-z]+)*$/
const REQUIREMENT = /^\s*(~>|>=|<=|!=|=|>|<)?\s*(\S+)\s*$/

export function isValidVersion(version: string): boolean {
  return VERSION.test(version)
}

function segments(version: string): Array<number | string> {
  return version.split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : part))
}

/** Negative when a < b, zero when equal, positive when a > b. "1.0" equals "1.0.0". */
export function compareVersions(a: string, b: string): number {
  const left = segments(a)
  const right = segments(b)
  const length = Math.max(left.length, right.length)
  for (let i = 0; i < length; i++) {
    const x = left[i] ?? 0
    const y = right[i] ?? 0
    if (x === y) continue
    if (typeof x === 'number' && typeof y === 'number') return x - y
    if (typeof x === 'number') return 1
    if (typeof y === 'number') return -1
    return x < y ? -1 : 1
  }
  return 0
}

/** Parses "'>= 1.2, < 2'"; throws an Error whose message names the bad part. */
export function parseConstraint(text: string): Requirement[] {
  const parts = text.split(',')
  if (text.trim() === '') throw new Error('the constraint is empty')
  return parts.map((part) => {
    const match = REQUIREMENT.exec(part)
    if (match === null) throw new Error(`"${part.trim()}" is not a requirement such as ">= 1.2"`)
    const version = match[2] ?? ''
    if (!isValidVersion(version)) {
      throw new Error(`"${version}" in "${part.trim()}" is not a version such as 1.2.3`)
    }
    return {operator: (match[1] ?? '=') as Operator, version}
  })
}

/** The exclusive upper bound of "~> version": drop the last segment, bump the one before. */
function pessimisticLimit(version: string): string {
  const parts = version.split('.').filter((part) => /^\d+$/.test(part))
  if (parts.length <= 1) return String(Number(parts[0] ?? 0) + 1)
  parts.pop()
  const last = parts.length - 1
  parts[last] = String(Number(parts[last]) + 1)
  return parts.join('.')
}

export function satisfiesRequirement(version: string, requirement: Requirement): boolean {
  const order = compareVersions(version, requirement.version)
  switch (requirement.operator) {
    case '=':
      return order === 0
    case '!=':
      return order !== 0
    case '>':
      return order > 0
    case '<':
      return order < 0
    case '>=':
      return order >= 0
    case '<=':
      return order <= 0
    case '~>':
      return order >= 0 && compareVersions(version, pessimisticLimit(requirement.version)) < 0
  }
}

export function satisfies(version: string, constraint: string | Requirement[]): boolean {
  const requirements = typeof constraint === 'string' ? parseConstraint(constraint) : constraint
  return requirements.every((requirement) => satisfiesRequirement(version, requirement))
}

/** The newest version that meets the constraint (all versions when it is undefined). */
export function newestSatisfying(versions: readonly string[], constraint?: string): string | undefined {
  const requirements = constraint === undefined || constraint.trim() === '' ? [] : parseConstraint(constraint)
  return [...versions]
    .filter((version) => isValidVersion(version) && satisfies(version, requirements))
    .sort(compareVersions)
    .at(-1)
}
