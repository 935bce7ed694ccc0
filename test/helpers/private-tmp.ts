import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll} from 'vitest'

/**
 * A setup file: each test file gets a temporary directory of its own as TMPDIR (os.tmpdir() and
 * the programs the tests start read it), removed with everything in it once the file's own
 * hooks have run. Tests make their scratch directories with mkdtemp in tmpdir() and need not
 * remove each one: a run leaves nothing behind in the system's temporary directory, even for a
 * test that failed halfway.
 */
const outer = tmpdir()
const own = mkdtempSync(path.join(outer, 'vm-unit-tmp-'))
process.env.TMPDIR = own

// Registered before any hook of the test file, so it runs after all of them (vitest runs
// after-hooks in reverse order of registration).
afterAll(() => {
  process.env.TMPDIR = outer
  rmSync(own, {recursive: true, force: true, maxRetries: 3})
})
