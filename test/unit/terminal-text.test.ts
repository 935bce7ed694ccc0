import {describe, expect, it} from 'vitest'

import {UserError} from '../../src/errors/errors.js'
import {errorToJson, renderError} from '../../src/cli/render-error.js'
import {createPaint, createStyle} from '../../src/cli/style.js'
import {renderTable} from '../../src/cli/table.js'
import {escapeControl, terminalLine} from '../../src/cli/terminal-text.js'

const plain = createStyle(false)
/** Any C0 or C1 control character, or DEL, written raw. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/

describe('escaping control characters', () => {
  it('writes C0, DEL and C1 controls as visible escapes', () => {
    expect(escapeControl('a\u001B[2Jb')).toBe('a\\x1b[2Jb')
    expect(escapeControl('title\u001B]0;pwned\u0007')).toBe('title\\x1b]0;pwned\\x07')
    expect(escapeControl('one\ntwo\r\tthree')).toBe('one\\ntwo\\r\\tthree')
    expect(escapeControl('nul\u0000 del\u007F csi\u009B')).toBe('nul\\x00 del\\x7f csi\\x9b')
  })

  it('hides no text: bidi overrides and zero-width characters are escaped too', () => {
    expect(escapeControl('abc\u202Egnp.exe')).toBe('abc\\u{202e}gnp.exe')
    expect(escapeControl('a\u200Bb')).toBe('a\\u{200b}b')
  })

  it('leaves ordinary text alone, non-ASCII letters included', () => {
    const text = 'vmfile/debian-12 1.0.0 (amd64, qemu) Größe 日本 C:\\path "q" 100%'
    expect(escapeControl(text)).toBe(text)
  })

  it('keeps tabs only when asked (guest output)', () => {
    expect(escapeControl('a\tb\u001B', {keepTabs: true})).toBe('a\tb\\x1b')
  })

  it('a printed line escapes values but keeps the colour of painted pieces', () => {
    const paint = createPaint(createStyle(true))
    const line = terminalLine(['[web\u001B[31m] ', paint.green('running\u001B]0;x\u0007'), ': ok'])
    expect(line).toBe('[web\\x1b[31m] \u001B[32mrunning\\x1b]0;x\\x07\u001B[39m: ok')
  })

  it('tables escape their cells, so a newline in a value cannot add a row', () => {
    const lines = renderTable(['NAME', 'VERSION'], [['evil\n1.0  fake', '1\u001B[2J']])
    expect(lines).toEqual(['NAME             VERSION', 'evil\\n1.0  fake  1\\x1b[2J'])
  })
})

describe('errors with hostile values', () => {
  it('print every part escaped: message, details, causes, hint', () => {
    const error = new UserError('Cannot extract "evil\u001B]0;owned\u0007"', {
      details: ['entry: a\nFAKE: line'],
      cause: new Error('open \u001B[2Jx'),
      hint: 'Remove \u009B31m it.',
    })
    const text = renderError(error, createStyle(true))
    // Only our own colour sequences remain: strip them, then nothing raw is left.
    // eslint-disable-next-line no-control-regex
    const withoutOurColours = text.replaceAll(/\u001B\[(1|2|22|31|36|39)m/g, '')
    expect(withoutOurColours).not.toMatch(RAW_CONTROL)
    expect(text).toContain('Cannot extract "evil\\x1b]0;owned\\x07"')
    expect(text).toContain('entry: a\\nFAKE: line')
    expect(text.split('\n')).toHaveLength(4)
  })

  it('render a cause that is not an Error by its message and code, never [object Object]', () => {
    const error = new UserError('QMP command failed', {cause: {class: 'GenericError', desc: 'Device busy'}})
    const nested = new UserError('Download failed', {cause: {message: 'disk full', code: 'ENOSPC', cause: {code: 'EIO'}}})
    expect(renderError(error, plain)).toContain('caused by: Device busy')
    expect(renderError(nested, plain)).toContain('caused by: disk full (ENOSPC)')
    expect(renderError(nested, plain)).toContain('caused by: EIO')
    expect(errorToJson(nested).error.causes).toEqual(['disk full (ENOSPC)', 'EIO'])
    expect(renderError(new UserError('x', {cause: {some: 'thing'}}), plain)).toContain('caused by: {"some":"thing"}')
    expect(JSON.stringify(errorToJson(error))).not.toContain('[object Object]')
  })
})
