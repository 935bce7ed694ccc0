import {statSync} from 'node:fs'

/**
 * The arguments bin/run.js's fast path understands, per command: the everyday forms of `vm
 * status`, `vm validate`, `vm init` and `vm global-status`. Anything else (--help, --debug, `--`, an unknown or
 * repeated flag, a flag without its value, one argument too many, a --cwd that is no
 * directory) is for the full command under oclif, which parses it and, when it is wrong,
 * says so in its own words. Declining is always safe; accepting must mean oclif would parse
 * the same arguments to the same values.
 */
export interface FastCommandSpec {
  /** How many arguments (not flags) it takes; Infinity for a list. */
  maxArgs: number
  /** Boolean flags by long name, with their one-letter alias. */
  booleans: Record<string, string | undefined>
  /** Flags with a value by long name, with their one-letter alias. */
  values: Record<string, string | undefined>
}

/** The base flags every command has (src/cli/base-command.ts) that the fast path takes. */
const BASE_BOOLEANS = {json: undefined}
const BASE_VALUES = {cwd: undefined}

export const FAST_COMMANDS = {
  status: {maxArgs: Number.POSITIVE_INFINITY, booleans: BASE_BOOLEANS, values: BASE_VALUES},
  validate: {maxArgs: 1, booleans: BASE_BOOLEANS, values: BASE_VALUES},
  'global-status': {maxArgs: 0, booleans: {...BASE_BOOLEANS, prune: undefined}, values: BASE_VALUES},
  init: {
    maxArgs: 1,
    booleans: {...BASE_BOOLEANS, force: 'f', minimal: 'm'},
    values: {...BASE_VALUES, output: 'o', 'box-version': undefined},
  },
} satisfies Record<string, FastCommandSpec>

export type FastCommandId = keyof typeof FAST_COMMANDS

export interface FastRequest {
  command: FastCommandId
  args: string[]
  /** --json */
  json: boolean
  /** --cwd, an existing directory, as given */
  cwd: string | undefined
  booleans: Record<string, true>
  values: Record<string, string>
}

export function isFastCommand(id: string | undefined): id is FastCommandId {
  return id !== undefined && Object.hasOwn(FAST_COMMANDS, id)
}

/**
 * Why the environment asks for the full command, or undefined: VM_NO_FAST=1; oclif's own
 * switches (DEBUG for its debug log, VM_CONTENT_TYPE=json for JSON output) that only oclif reads.
 */
export function fastPathBlockedBy(env: NodeJS.ProcessEnv): string | undefined {
  if (env.VM_NO_FAST === '1') return 'VM_NO_FAST=1'
  if (env.DEBUG !== undefined && env.DEBUG !== '') return 'DEBUG is set'
  if (env.VM_CONTENT_TYPE !== undefined) return 'VM_CONTENT_TYPE is set'
  return undefined
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory()
  } catch {
    return false
  }
}

/** `argv` (after the command's name) as the fast path runs it, or undefined when the full command must parse it. */
export function parseFastArgs(command: FastCommandId, argv: readonly string[]): FastRequest | undefined {
  const spec: FastCommandSpec = FAST_COMMANDS[command]
  const byAlias = (alias: string, names: Record<string, string | undefined>) => Object.keys(names).find((name) => names[name] === alias)
  const request: FastRequest = {command, args: [], json: false, cwd: undefined, booleans: {}, values: {}}
  const seen = new Set<string>()
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === '' || arg === '-') return undefined
    if (!arg.startsWith('-')) {
      if (request.args.length >= spec.maxArgs) return undefined
      request.args.push(arg)
      continue
    }
    let name: string | undefined
    let value: string | undefined
    if (arg.startsWith('--')) {
      const equals = arg.indexOf('=')
      name = arg.slice(2, equals === -1 ? undefined : equals)
      if (equals !== -1) value = arg.slice(equals + 1)
    } else if (arg.length === 2) {
      name = byAlias(arg[1]!, spec.booleans) ?? byAlias(arg[1]!, spec.values)
    }
    if (name === undefined || seen.has(name)) return undefined
    seen.add(name)
    if (Object.hasOwn(spec.booleans, name)) {
      if (value !== undefined) return undefined
      if (name === 'json') request.json = true
      else request.booleans[name] = true
      continue
    }
    if (!Object.hasOwn(spec.values, name)) return undefined
    value ??= argv[++index]
    // oclif reads "-" as a value (--output -); any other value that looks like a flag is its to judge.
    if (value === undefined || value === '' || (value.startsWith('-') && value !== '-')) return undefined
    if (name === 'cwd') {
      if (!isDirectory(value)) return undefined
      request.cwd = value
    } else request.values[name] = value
  }
  return request
}
