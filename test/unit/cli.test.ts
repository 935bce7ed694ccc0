import {describe, expect, it} from 'vitest'

import {ExternalError, UserError, VmError} from '../../src/errors/errors.js'
import {ExitCode} from '../../src/errors/exit-codes.js'
import {classifyError, errorToJson, renderError} from '../../src/cli/render-error.js'
import {colorsEnabled, createStyle} from '../../src/cli/style.js'
import {machineStateDir, vmPaths} from '../../src/state/paths.js'

const plain = createStyle(false)

describe('error printer', () => {
  it('prints the message, details, the cause chain and what to do next', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8080'), {code: 'ECONNREFUSED'})
    const middle = new Error('download failed', {cause: root})
    const error = new UserError('Cannot add box vmfile/tiny', {
      cause: middle,
      hint: 'Check the registry URL.',
      details: ['url: http://127.0.0.1:8080/x'],
    })
    expect(renderError(error, plain)).toBe(
      [
        'Error: Cannot add box vmfile/tiny',
        '  url: http://127.0.0.1:8080/x',
        '  caused by: download failed',
        '  caused by: connect ECONNREFUSED 127.0.0.1:8080',
        'Next: Check the registry URL.',
      ].join('\n'),
    )
  })

  it('adds the stack with --debug', () => {
    expect(renderError(new UserError('x'), plain, true)).toContain('at ')
  })

  it('takes exit codes from one table', () => {
    expect(classifyError(new UserError('x')).exitCode).toBe(ExitCode.failure)
    expect(classifyError(new VmError('x', {exit: 'locked'})).exitCode).toBe(75)
    expect(classifyError(new TypeError('boom')).exitCode).toBe(ExitCode.internal)
    expect(classifyError(Object.assign(new Error('Nonexistent flag: --x'), {oclif: {exit: 2}})).exitCode).toBe(ExitCode.usage)
  })

  it('external errors name the program and keep its stderr', () => {
    const error = new ExternalError('qemu-img failed', 'qemu-img', ['info', 'x'], 'Could not open x')
    expect(error.kind).toBe('external')
    expect(error.stderrTail).toBe('Could not open x')
  })

  it('has a JSON form', () => {
    const json = errorToJson(new UserError('bad', {code: 'BAD', hint: 'fix it', cause: new Error('root')}), ['careful'])
    expect(json).toEqual({
      status: 1,
      error: {name: 'UserError', code: 'BAD', kind: 'user', message: 'bad', hint: 'fix it', details: [], causes: ['root']},
      warnings: ['careful'],
    })
  })
})

describe('colours', () => {
  const tty = {isTTY: true} as NodeJS.WriteStream
  const pipe = {isTTY: false} as NodeJS.WriteStream
  it('are on for a terminal and off for a pipe or with NO_COLOR', () => {
    expect(colorsEnabled(tty, {})).toBe(true)
    expect(colorsEnabled(pipe, {})).toBe(false)
    expect(colorsEnabled(tty, {NO_COLOR: '1'})).toBe(false)
    expect(colorsEnabled(pipe, {FORCE_COLOR: '1'})).toBe(true)
  })
  it('plain style leaves text alone', () => {
    expect(plain.red('x')).toBe('x')
    expect(createStyle(true).red('x')).toBe('\u001B[31mx\u001B[39m')
  })
})

describe('paths', () => {
  it('follow XDG by default', () => {
    const paths = vmPaths({
      HOME: '/home/u',
      XDG_DATA_HOME: '/d',
      XDG_CACHE_HOME: '/c',
      XDG_CONFIG_HOME: '/k',
      XDG_RUNTIME_DIR: '/run/user/1',
    })
    expect(paths.data).toBe('/d/vmfile')
    expect(paths.boxes).toBe('/d/vmfile/boxes')
    expect(paths.cache).toBe('/c/vmfile')
    expect(paths.downloads).toBe('/c/vmfile/downloads')
    expect(paths.config).toBe('/k/vmfile')
    expect(paths.runtime).toBe('/run/user/1/vmfile')
  })

  it('VM_HOME moves them all; each has its own variable too', () => {
    const paths = vmPaths({VM_HOME: '/tmp/h', XDG_DATA_HOME: '/d', VM_BOXES_DIR: '/b'})
    expect(paths).toMatchObject({data: '/tmp/h/data', cache: '/tmp/h/cache', config: '/tmp/h/config', runtime: '/tmp/h/run', boxes: '/b'})
    expect(vmPaths({VM_HOME: '/tmp/h', VM_CACHE_DIR: '/x'}).cache).toBe('/x')
  })

  it('project state lives in .vm/', () => {
    expect(machineStateDir('/p', 'web')).toBe('/p/.vm/machines/web')
  })
})
