import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

const src = path.join(import.meta.dirname, '../../src')

/** Every TypeScript file under src/, relative to it. */
function sources(dir = src): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((entry) => {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) return sources(file)
    return entry.name.endsWith('.ts') ? [path.relative(src, file)] : []
  })
}

/**
 * The modules that own running ssh: exec.ts runs it, options.ts writes its options, master.ts closes shared connections;
 * libvirt's tunnel.ts logs in to a libvirt host (never a guest), as virsh's own ssh transport would.
 */
const OWNERS = new Set(['ssh/exec.ts', 'ssh/options.ts', 'ssh/master.ts', 'driver/libvirt/tunnel.ts'])
/** Call sites converted in a change of their own (orchestration, being rewritten). */
const PENDING = new Set<string>()

describe('one module runs commands in the guest', () => {
  it('no other module runs ssh or builds its arguments', () => {
    const offenders = sources()
      .filter((file) => !OWNERS.has(file) && !PENDING.has(file))
      .flatMap((file) => {
        const text = readFileSync(path.join(src, file), 'utf8')
        const found = [
          ...text.matchAll(/\b(?:runProgram|runStreaming|runAttached|spawn|spawnSync|execFile)\(\s*['"`]ssh['"`]/g),
          ...text.matchAll(/\bsshArgs\b/g),
          // An argv that starts with ssh and goes on with options: ['ssh', '-o', ...] or ['ssh', ...args].
          ...text.matchAll(/\[\s*['"`]ssh['"`]\s*,\s*(?:\.\.\.|['"`]-)/g),
        ]
        return found.map((match) => `${file}: ${match[0]}`)
      })
    expect(offenders).toEqual([])
  })
})
