import {existsSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

let cached: string | undefined

/**
 * The installed package's root (where package.json, templates/ and boxes/ are). Found by
 * walking up from this module, which works from src/ (tests), dist/ and dist/chunks/ alike.
 */
export function packageRoot(): string {
  if (cached !== undefined) return cached
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'templates'))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`cannot find the vmfile package root above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
  cached = dir
  return dir
}
