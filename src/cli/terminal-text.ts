/**
 * Text that reaches a terminal. Values in messages come from Vmfiles, boxes, archives, guests
 * and file names; a control character in one of them could move the cursor, rewrite the
 * screen, set the window title or hide the rest of a line. Every line vm prints goes through
 * escapeControl, so such characters show up visibly (\x1b, \n) and act on nothing. Layout
 * (line breaks between lines, colours) is added by the printer after escaping.
 */

const NAMED: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t'}

/**
 * C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text
 * (bidirectional overrides and isolates, zero-width marks, line and paragraph separators).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001F\u007F-\u009F\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF]/g

function escapeOne(char: string): string {
  const named = NAMED[char]
  if (named !== undefined) return named
  const code = char.charCodeAt(0)
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`
}

export interface EscapeOptions {
  /** Leave tabs as they are (guest output uses them for alignment; they cannot act). */
  keepTabs?: boolean
}

/**
 * `text` with every control or invisible formatting character written as an escape: ESC is
 * `\x1b`, a newline `\n`. Ordinary text, including non-ASCII letters, is unchanged.
 */
export function escapeControl(text: string, options: EscapeOptions = {}): string {
  return text.replace(UNSAFE, (char) => (options.keepTabs === true && char === '\t' ? char : escapeOne(char)))
}

/** True when `text` holds a character escapeControl would rewrite. */
export function hasControl(text: string): boolean {
  return new RegExp(UNSAFE.source).test(text)
}

/** Text fit for a terminal as it is: escaped values plus vm's own styling (colours). */
export class TerminalText {
  constructor(readonly value: string) {}
}

/** A piece of a printed line: plain values are escaped, TerminalText is kept. */
export type Printable = string | number | TerminalText

/** One printed line from its pieces; a newline inside a piece is shown as \n, never acted on. */
export function terminalLine(parts: readonly Printable[], options: EscapeOptions = {}): string {
  return parts.map((part) => (part instanceof TerminalText ? part.value : escapeControl(String(part), options))).join('')
}
