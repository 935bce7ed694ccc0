import type {SchemaNode} from './schema-types.js'
import {vmfileSchema} from './schema.js'

type Json = Record<string, unknown>

function withCommon(node: SchemaNode, out: Json): Json {
  if (node.description !== undefined) out.description = node.description
  if ('default' in node && node.default !== undefined) out.default = node.default
  return out
}

/** Converts a schema node to JSON Schema (draft-07), for editors with a YAML language server. */
export function toJsonSchema(node: SchemaNode): Json {
  switch (node.kind) {
    case 'any':
      return withCommon(node, {})
    case 'string': {
      const out: Json = {type: 'string'}
      if (node.enum !== undefined) out.enum = [...node.enum]
      if (node.pattern !== undefined) out.pattern = node.pattern.regex
      if (node.examples !== undefined) out.examples = node.examples
      return withCommon(node, out)
    }
    case 'integer': {
      const out: Json = {type: 'integer'}
      if (node.min !== undefined) out.minimum = node.min
      if (node.max !== undefined) out.maximum = node.max
      return withCommon(node, out)
    }
    case 'boolean':
      return withCommon(node, {type: 'boolean'})
    case 'literal':
      return withCommon(node, {const: node.value})
    case 'scalar':
      return withCommon(node, {type: ['string', 'number', 'boolean']})
    case 'size':
      return withCommon(node, {
        anyOf: [
          {type: 'integer', minimum: node.min ?? 1},
          {type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*[KkMmGgTt]?(i?[Bb])?\\s*$'},
        ],
      })
    case 'array':
      return withCommon(node, {type: 'array', items: toJsonSchema(node.items)})
    case 'map': {
      const out: Json = {type: 'object', additionalProperties: toJsonSchema(node.values)}
      if (node.key !== undefined) out.propertyNames = {pattern: node.key.regex}
      return withCommon(node, out)
    }
    case 'object': {
      const out: Json = {
        type: 'object',
        properties: Object.fromEntries(Object.entries(node.fields).map(([key, field]) => [key, toJsonSchema(field)])),
        additionalProperties: false,
      }
      if (node.required !== undefined && node.required.length > 0) out.required = [...node.required]
      return withCommon(node, out)
    }
    case 'tagged':
      return withCommon(node, {
        type: 'object',
        required: ['type'],
        oneOf: Object.values(node.variants).map((variant) => {
          const schema = toJsonSchema(variant)
          schema.required = ['type', ...((schema.required as string[] | undefined) ?? [])]
          return schema
        }),
      })
    case 'anyOf':
      return withCommon(node, {anyOf: node.options.map((option) => toJsonSchema(option))})
  }
}

/** The complete JSON Schema document for a Vmfile. */
export function vmfileJsonSchema(): Json {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Vmfile',
    ...toJsonSchema(vmfileSchema),
  }
}
