import {readFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {renderVmfile} from '../../src/project/init.js'
import {checkVmfile, formatProblem, parseVmfile} from '../../src/vmfile/index.js'
import {vmfileJsonSchema} from '../../src/vmfile/json-schema.js'
import {machineNode, vmfileSchema} from '../../src/vmfile/schema.js'
import type {SchemaNode} from '../../src/vmfile/schema-types.js'

const root = path.resolve(import.meta.dirname, '../..')

function problemsOf(text: string): string[] {
  return checkVmfile(parseVmfile(text)).map((problem) => formatProblem(problem))
}

/** Every key the schema knows, as "key" for top-level ones and "key:" lines for nested ones. */
function allKeys(node: SchemaNode, out = new Set<string>()): Set<string> {
  if (node.kind === 'object') {
    for (const [key, child] of Object.entries(node.fields)) {
      out.add(key)
      allKeys(child, out)
    }
  }
  if (node.kind === 'array') allKeys(node.items, out)
  if (node.kind === 'map') allKeys(node.values, out)
  if (node.kind === 'anyOf') for (const option of node.options) allKeys(option, out)
  if (node.kind === 'tagged') for (const variant of Object.values(node.variants)) allKeys(variant, out)
  return out
}

/** Turns "# key: value" example lines back into YAML (keeps prose comments as comments). */
function uncomment(text: string): string {
  return text
    .split('\n')
    .map((line) => (/^#( {0,6}(- )?[a-z_]+:( |$)| {3,}(- )?[a-z_{]| {0,6}- (type|host|guest|\{))/.test(line) ? line.slice(2) : line))
    .join('\n')
}

describe('vm init template', () => {
  it('the full Vmfile is valid and shows every key', async () => {
    const text = await renderVmfile({box: 'vmfile/tiny'})
    expect(problemsOf(text)).toEqual([])
    for (const key of allKeys(vmfileSchema)) expect(text, `template mentions ${key}`).toMatch(new RegExp(`\\b${key}:`))
  })

  it('with the examples uncommented it is still valid', async () => {
    const text = uncomment(await renderVmfile({box: 'vmfile/tiny'}))
    expect(text).toContain('\nmachines:')
    expect(problemsOf(text)).toEqual([])
  })

  it('--minimal is short and valid', async () => {
    const text = await renderVmfile({box: 'vmfile/tiny', boxVersion: '~> 1.0', minimal: true})
    expect(text.split('\n').length).toBeLessThan(10)
    expect(text).toContain('box_version: "~> 1.0"')
    expect(problemsOf(text)).toEqual([])
  })
})

describe('Vmfile.example', () => {
  const text = readFileSync(path.join(root, 'Vmfile.example'), 'utf8')

  it('parses and validates', () => {
    expect(problemsOf(text)).toEqual([])
  })

  it('documents every key', () => {
    for (const key of allKeys(vmfileSchema)) expect(text, `Vmfile.example mentions ${key}`).toMatch(new RegExp(`\\b${key}:`))
    for (const key of Object.keys(machineNode.fields)) expect(text).toMatch(new RegExp(`\\b${key}:`))
  })

  it('with its examples uncommented is still valid', () => {
    expect(problemsOf(uncomment(text))).toEqual([])
  })
})

describe('JSON Schema for editors', () => {
  it('the shipped schema/vmfile.schema.json is up to date', () => {
    const shipped = JSON.parse(readFileSync(path.join(root, 'schema/vmfile.schema.json'), 'utf8'))
    expect(shipped).toEqual(vmfileJsonSchema())
  })

  it('describes the top-level keys and rejects unknown ones', () => {
    const schema = vmfileJsonSchema() as {properties: Record<string, unknown>; additionalProperties: boolean}
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['box', 'memory', 'machines', 'provision']))
    expect(schema.additionalProperties).toBe(false)
  })
})
