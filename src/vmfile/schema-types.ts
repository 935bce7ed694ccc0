/**
 * A small schema language for the Vmfile. One definition drives validation (with YAML
 * positions), defaults, the JSON Schema shipped for editors and the `vm init` template.
 */

/** A semantic check on a plain value; returns a message when the value is wrong. */
export type Check = (value: unknown) => string | undefined

/** A cross-field rule on an object; returns problems relative to the object. */
export type Rule = (value: Record<string, unknown>) => Array<{key?: string; message: string}>

interface Common {
  description?: string
  check?: Check
}

export interface StringNode extends Common {
  kind: 'string'
  default?: string
  enum?: readonly string[]
  /** A JSON-Schema-compatible pattern and how to explain it when it does not match. */
  pattern?: {regex: string; hint: string}
  examples?: string[]
}

export interface IntegerNode extends Common {
  kind: 'integer'
  default?: number
  min?: number
  max?: number
}

export interface BooleanNode extends Common {
  kind: 'boolean'
  default?: boolean
}

/** A size: an integer in MiB, or a string with a unit (512M, 2G, 1.5G). */
export interface SizeNode extends Common {
  kind: 'size'
  default?: string | number
  /** Smallest allowed size in MiB (1 when absent). */
  min?: number
}

/** A string, number or boolean (environment values). */
export interface ScalarNode extends Common {
  kind: 'scalar'
}

/** Anything (passed through untouched, e.g. Ansible extra vars). */
export interface AnyNode extends Common {
  kind: 'any'
}

export interface ObjectNode extends Common {
  kind: 'object'
  fields: Record<string, SchemaNode>
  required?: readonly string[]
  rules?: readonly Rule[]
}

export interface ArrayNode extends Common {
  kind: 'array'
  items: SchemaNode
}

export interface MapNode extends Common {
  kind: 'map'
  values: SchemaNode
  key?: {regex: string; hint: string}
}

/** Objects told apart by their `type` key. */
export interface TaggedNode extends Common {
  kind: 'tagged'
  variants: Record<string, ObjectNode>
}

/** One of several shapes, chosen by the YAML node's shape (scalar, list, mapping). */
export interface AnyOfNode extends Common {
  kind: 'anyOf'
  options: readonly SchemaNode[]
  /** How to name the accepted shapes in a message: "a string or a list of strings". */
  expected: string
}

export interface LiteralNode extends Common {
  kind: 'literal'
  value: boolean
}

export type SchemaNode =
  | AnyNode
  | AnyOfNode
  | ArrayNode
  | BooleanNode
  | IntegerNode
  | LiteralNode
  | MapNode
  | ObjectNode
  | ScalarNode
  | SizeNode
  | StringNode
  | TaggedNode
