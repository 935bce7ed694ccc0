// Writes schema/vmfile.schema.json from the compiled schema (run by `npm run build`).
import {mkdirSync, writeFileSync} from 'node:fs'

import {vmfileJsonSchema} from '../dist/json-schema.js'

const target = new URL('../schema/vmfile.schema.json', import.meta.url)
mkdirSync(new URL('.', target), {recursive: true})
writeFileSync(target, `${JSON.stringify(vmfileJsonSchema(), null, 2)}\n`)
