import {isValidVersion} from './version.js'

/**
 * Strict patterns for every value vm takes from a box, its metadata.json or a catalog. Box data
 * ends up in directory names, QEMU and ssh arguments, ssh_config and the terminal, so each field
 * is checked where it is read, and a bad value is reported with its field name, escaped.
 */

/**
 * How the store writes "/" in a box name (Vagrant's layout). A name may not contain its core
 * word at all: then, as the word has no prefix that is also its suffix, every occurrence of the
 * escape in a directory name is an escaped "/" and the encoding cannot map two names to one.
 */
export const NAME_SLASH = '-VAGRANTSLASH-'
const NAME_SLASH_WORD = 'VAGRANTSLASH'

const SEGMENT = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'
const BOX_NAME = new RegExp(`^${SEGMENT}(/${SEGMENT})?$`)
const TOKEN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/
const SSH_USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/
const FILE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/
const CMDLINE = /^[\x20-\x7e]{0,2048}$/
export const FIRMWARE_HINTS = ['qboot'] as const
const CHECKSUM_LENGTH: Record<string, number> = {md5: 32, sha1: 40, sha256: 64, sha384: 96, sha512: 128}

/**
 * A value as it can be shown safely: JSON-style quotes, with every control character (C0, DEL,
 * C1), line separator and bidirectional override written as an escape.
 */
export function quoteValue(value: unknown): string {
  if (typeof value !== 'string') return JSON.stringify(value) ?? String(value)
  const shown = value.length > 200 ? `${value.slice(0, 200)}...` : value
  let out = '"'
  for (const char of shown) {
    const code = char.codePointAt(0)!
    if (char === '"' || char === '\\') out += `\\${char}`
    else if (char === '\n') out += '\\n'
    else if (char === '\t') out += '\\t'
    else if (char === '\r') out += '\\r'
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0) || (code >= 0x2028 && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069))
      out += `\\u${code.toString(16).padStart(4, '0')}`
    else out += char
  }
  return `${out}"`
}

/** A box name: org/box or box (letters, digits, _ . -), never containing the store's slash escape. */
export function isValidBoxName(name: string): boolean {
  return BOX_NAME.test(name) && !name.includes(NAME_SLASH_WORD)
}

export const BOX_NAME_RULE = `a box name such as org/box (letters, digits, _ . -; each part at most 128 characters; not containing ${NAME_SLASH_WORD})`

/** Architecture and provider names: they name directories in the store. */
export function isValidToken(value: string): boolean {
  return TOKEN.test(value)
}

/** A portable user name: what ssh and ssh_config take without quoting. */
export function isValidSshUser(value: string): boolean {
  return SSH_USER.test(value)
}

/** A relative path inside a box: plain names (letters, digits, _ . + -, not starting with . or -) joined by "/". */
export function isValidBoxFile(value: string): boolean {
  const parts = value.split('/')
  return parts.length <= 8 && parts.every((part) => FILE_SEGMENT.test(part))
}

/** A kernel command line: printable ASCII on one line, at most 2048 characters (Linux's limit on x86). */
export function isValidCmdline(value: string): boolean {
  return CMDLINE.test(value)
}

export function isValidChecksum(type: string, value: string): boolean {
  const length = CHECKSUM_LENGTH[type]
  return length !== undefined && value.length === length && /^[0-9a-f]+$/.test(value)
}

/** A box version (1.2.3, 12.20240101.1 ...), at most 64 characters. */
export function isValidBoxVersion(value: string): boolean {
  return value.length <= 64 && isValidVersion(value)
}

export interface FieldRule {
  test: (value: string) => boolean
  /** What a valid value looks like, for messages. */
  rule: string
}

export const FIELD_RULES = {
  name: {test: isValidBoxName, rule: BOX_NAME_RULE},
  version: {test: isValidBoxVersion, rule: 'a version such as 1.2.3 (digits and dots, at most 64 characters)'},
  architecture: {test: isValidToken, rule: 'an architecture such as amd64 (letters, digits, _ . -, at most 32 characters)'},
  provider: {test: isValidToken, rule: 'a provider name such as libvirt (letters, digits, _ . -, at most 32 characters)'},
  ssh_user: {test: isValidSshUser, rule: 'a user name (letters, digits, _ . -, starting with a letter or _, at most 32 characters)'},
  file: {test: isValidBoxFile, rule: 'a relative path inside the box (names of letters, digits, _ . + -, joined by /)'},
  disk_name: {test: isValidToken, rule: 'a disk name (letters, digits, _ . -, at most 32 characters)'},
  cmdline: {test: isValidCmdline, rule: 'a kernel command line (printable ASCII on one line, at most 2048 characters)'},
  firmware: {test: (value: string) => (FIRMWARE_HINTS as readonly string[]).includes(value), rule: `one of ${FIRMWARE_HINTS.join(', ')}`},
} satisfies Record<string, FieldRule>

/** The problem with `value` as field `label` under `rule`, or undefined when it is valid. */
export function fieldProblem(label: string, value: unknown, rule: FieldRule): string | undefined {
  if (typeof value !== 'string') return `"${label}" is ${quoteValue(value)}; it must be a string: ${rule.rule}`
  return rule.test(value) ? undefined : `"${label}" is ${quoteValue(value)}; it must be ${rule.rule}`
}
