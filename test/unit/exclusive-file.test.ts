import {existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {createExclusive, removeIfUnchanged} from '../../src/state/atomic-file.js'

const scratch = (): string => mkdtempSync(path.join(tmpdir(), 'vm-exclusive-'))

describe('lock and lease files', () => {
  it('appear with their content: a reader never sees one empty or half-written', async () => {
    const dir = scratch()
    const file = path.join(dir, 'held.lock')
    const content = `${process.pid}`.repeat(2000)
    const seen = new Set<string>()
    let done = false
    const reader = (async () => {
      while (!done) {
        try {
          seen.add(readFileSync(file, 'utf8'))
        } catch {
          // not there yet
        }
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    for (let round = 0; round < 200; round++) {
      const results = await Promise.all([createExclusive(file, content), createExclusive(file, content)])
      expect(results.filter(Boolean)).toHaveLength(1)
      await removeIfUnchanged(file, content)
    }
    done = true
    await reader
    expect([...seen].filter((text) => text !== content)).toEqual([])
    expect(readdirSync(dir)).toEqual([])
  })

  it('a stale one is removed, but not a fresh one that replaced it since it was read', async () => {
    const dir = scratch()
    const file = path.join(dir, 'held.lock')
    writeFileSync(file, '4000000')
    await removeIfUnchanged(file, '4000000')
    expect(existsSync(file)).toBe(false)
    // Another process took the lock after we read the dead holder's PID: its lock stays.
    expect(await createExclusive(file, String(process.pid))).toBe(true)
    await removeIfUnchanged(file, '4000000')
    expect(readFileSync(file, 'utf8')).toBe(String(process.pid))
    expect(readdirSync(dir)).toEqual(['held.lock'])
  })
})
