import {escapeControl, TerminalText} from './terminal-text.js'

/**
 * Terminal styling. Colours are on only when the stream is a TTY and NO_COLOR is unset
 * (https://no-color.org); FORCE_COLOR turns them on regardless.
 */
export interface Style {
  bold(text: string): string
  dim(text: string): string
  red(text: string): string
  yellow(text: string): string
  green(text: string): string
  cyan(text: string): string
}

export function colorsEnabled(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true
  return Boolean(stream.isTTY) && env.TERM !== 'dumb'
}

function sgr(open: number, close: number): (text: string) => string {
  return (text) => `\u001B[${open}m${text}\u001B[${close}m`
}

const plain = (text: string): string => text

export function createStyle(enabled: boolean): Style {
  if (!enabled) return {bold: plain, dim: plain, red: plain, yellow: plain, green: plain, cyan: plain}
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    yellow: sgr(33, 39),
    green: sgr(32, 39),
    cyan: sgr(36, 39),
  }
}

/** Styling for printed lines: the text is escaped first, then coloured (see terminal-text.ts). */
export type Paint = {[K in keyof Style]: (text: string) => TerminalText}

export function createPaint(style: Style): Paint {
  const paint = (apply: (text: string) => string) => (text: string) => new TerminalText(apply(escapeControl(text)))
  return {
    bold: paint(style.bold),
    dim: paint(style.dim),
    red: paint(style.red),
    yellow: paint(style.yellow),
    green: paint(style.green),
    cyan: paint(style.cyan),
  }
}
