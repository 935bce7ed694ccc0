import {createHash} from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {boxFileDigest, DIGEST_CACHE_SUBDIR} from '../../src/driver/libvirt/volumes.js'

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

describe('box file digests for libvirt volume names', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-box-digest-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const env = {VM_HOME: path.join(dir, 'home')}
  const file = path.join(dir, 'box.img')

  it('reads a box file once: the next machine takes the digest kept with the file identity', async () => {
    writeFileSync(file, 'disk one')
    expect(await boxFileDigest(file, env)).toBe(sha256('disk one'))
    const cacheDir = path.join(dir, 'home', 'cache', DIGEST_CACHE_SUBDIR)
    const [entry] = readdirSync(cacheDir)
    const kept = JSON.parse(readFileSync(path.join(cacheDir, entry!), 'utf8')) as {sha256: string}
    expect(kept.sha256).toBe(sha256('disk one'))
    // Proof that the file is not read again: a digest planted in the cache is what comes back.
    writeFileSync(path.join(cacheDir, entry!), JSON.stringify({...kept, sha256: 'f'.repeat(64)}))
    expect(await boxFileDigest(file, env)).toBe('f'.repeat(64))
  })

  it('reads the file again when it changed (same size, other content and times)', async () => {
    writeFileSync(file, 'disk two')
    utimesSync(file, new Date(2020, 1, 1), new Date(2020, 1, 1))
    expect(await boxFileDigest(file, env)).toBe(sha256('disk two'))
    expect(await boxFileDigest(path.relative(process.cwd(), file), env)).toBe(sha256('disk two'))
  })
})
