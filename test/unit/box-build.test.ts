import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import config from '../../vitest.config.js'
import {buildBoxAsync, lastLines, staleBoxes, startBoxBuilds} from '../helpers/box-build.js'
import {awaitBoxBuilds, findBuiltBox, repoRoot} from '../helpers/built-boxes.js'
import {builtBox} from '../helpers/vm-cli.js'

/**
 * The e2e tests' boxes are built by the e2e project's global setup, in the main vitest process,
 * with an asynchronous child process: a test worker blocked in a synchronous build for minutes
 * loses its connection to vitest ("Timeout calling onTaskUpdate") and the run is aborted.
 */

let dir: string
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vm-box-build-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function script(name: string, body: string): string {
  const file = path.join(dir, `${name}.sh`)
  writeFileSync(file, `set -u\nbox=$1\n${body}\n`)
  return file
}

describe('buildBoxAsync', () => {
  it('streams the output while the build runs and leaves the event loop free', async () => {
    const build = script('slow', 'echo "[$box] step one"; sleep 1.5; echo "[$box] step two"')
    const started = performance.now()
    let firstOutputMs: number | undefined
    let ticks = 0
    const ticker = setInterval(() => ticks++, 50)
    const chunks: string[] = []
    const result = await buildBoxAsync({
      box: 'tiny',
      script: build,
      logFile: path.join(dir, 'logs/slow.log'),
      timeoutMs: 30_000,
      onOutput: (chunk) => {
        firstOutputMs ??= performance.now() - started
        chunks.push(chunk)
      },
    })
    clearInterval(ticker)
    expect(result.ok).toBe(true)
    expect(result.message).toBeUndefined()
    expect(result.seconds).toBeGreaterThanOrEqual(1.4)
    // The first line arrived long before the build ended, and timers kept firing meanwhile.
    expect(firstOutputMs).toBeLessThan(1000)
    expect(ticks).toBeGreaterThanOrEqual(15)
    expect(chunks.join('')).toBe('[tiny] step one\n[tiny] step two\n')
    expect(readFileSync(path.join(dir, 'logs/slow.log'), 'utf8')).toBe('[tiny] step one\n[tiny] step two\n')
  })

  it('reports a failed build with the box, its exit status, the end of its output and the log file', async () => {
    const build = script(
      'fails',
      'for i in $(seq 1 100); do echo "[$box] line $i"; done; echo "[$box] error: mmdebstrap failed" >&2; exit 3',
    )
    const logFile = path.join(dir, 'logs/fails.log')
    const result = await buildBoxAsync({box: 'debian-12', script: build, logFile, timeoutMs: 30_000, tailLines: 10})
    expect(result.ok).toBe(false)
    const message = result.message ?? ''
    expect(message).toContain('the debian-12 box could not be built')
    expect(message).toContain('failed with exit status 3')
    expect(message).toContain('[debian-12] error: mmdebstrap failed')
    expect(message).toContain('[debian-12] line 100')
    expect(message).toContain('[debian-12] line 92')
    expect(message).not.toContain('[debian-12] line 91\n')
    expect(message).toContain(`Full log: ${logFile}`)
    expect(message).toContain('sudo npm run boxes -- debian-12')
    // The log has everything.
    expect(readFileSync(logFile, 'utf8')).toContain('[debian-12] line 1\n')
  })

  it('stops a build that takes too long with SIGTERM (so it can clean up) and says so', async () => {
    const cleaned = path.join(dir, 'cleaned')
    const build = script('hangs', `trap 'echo cleaned > ${cleaned}; exit 143' TERM\necho "[$box] waiting"\nsleep 60 & wait`)
    const started = performance.now()
    const result = await buildBoxAsync({box: 'tiny', script: build, logFile: path.join(dir, 'logs/hangs.log'), timeoutMs: 700})
    expect(performance.now() - started).toBeLessThan(10_000)
    expect(result.ok).toBe(false)
    expect(result.message).toContain('did not finish within 1 s')
    expect(result.message).toContain('[tiny] waiting')
    expect(existsSync(cleaned)).toBe(true)
  })

  it('kills a build that ignores SIGTERM after the grace time', async () => {
    const build = script('stubborn', "trap '' TERM\nwhile sleep 0.1; do :; done")
    const started = performance.now()
    const result = await buildBoxAsync({
      box: 'tiny',
      script: build,
      logFile: path.join(dir, 'logs/stubborn.log'),
      timeoutMs: 300,
      killGraceMs: 300,
    })
    expect(performance.now() - started).toBeLessThan(10_000)
    expect(result.ok).toBe(false)
    expect(result.message).toContain('did not finish within')
  })

  it('stops the build when the run is interrupted', async () => {
    const build = script('interrupted', 'sleep 60 & wait')
    const interrupt = new AbortController()
    setTimeout(() => interrupt.abort(), 300)
    const result = await buildBoxAsync({
      box: 'tiny',
      script: build,
      logFile: path.join(dir, 'logs/interrupted.log'),
      timeoutMs: 60_000,
      signal: interrupt.signal,
    })
    expect(result.ok).toBe(false)
    expect(result.message).toContain('was interrupted')
  })

  it('lastLines keeps the last non-empty lines', () => {
    expect(lastLines('a\n\nb\nc\n', 2)).toEqual(['b', 'c'])
    expect(lastLines('', 3)).toEqual([])
  })
})

describe('box builds in the background, awaited by the e2e files', () => {
  it('startBoxBuilds returns at once; the builds run one after the other and their outcome lands in the status file', async () => {
    const order = path.join(dir, 'bg-order')
    const build = script(
      'background',
      `echo "start $box" >> ${order}; sleep 0.7; echo "end $box" >> ${order}; [ "$box" != debian-12 ] || { echo "[$box] error: broken" >&2; exit 4; }`,
    )
    const statusFile = path.join(dir, 'bg-logs/.status.json')
    const lines: string[] = []
    const started = performance.now()
    const outcome = startBoxBuilds({
      boxes: ['tiny', 'debian-12'],
      script: build,
      logsDir: path.join(dir, 'bg-logs'),
      statusFile,
      timeoutMs: 30_000,
      say: (line) => lines.push(line),
    })
    // Nothing awaited yet: the caller (the global setup) goes on while the builds run.
    expect(performance.now() - started).toBeLessThan(500)
    expect(existsSync(statusFile)).toBe(false)
    const waited = await awaitBoxBuilds({boxes: ['tiny', 'debian-12'], statusFile, waitMs: 30_000}, 50)
    expect(performance.now() - started).toBeGreaterThanOrEqual(1300)
    expect(readFileSync(order, 'utf8')).toBe('start tiny\nend tiny\nstart debian-12\nend debian-12\n')
    expect(Object.keys(waited.failures)).toEqual(['debian-12'])
    expect(waited.failures['debian-12']).toContain('[debian-12] error: broken')
    expect(await outcome).toEqual(waited)
    expect(lines.some((line) => line.startsWith('built the tiny box in'))).toBe(true)
    expect(lines.at(-1)).toMatch(/^box builds took .*FAILED: debian-12/)
  })

  it('an interrupt stops the build under way and skips the rest, each reported as not built', async () => {
    const build = script('bg-interrupted', 'sleep 60 & wait')
    const statusFile = path.join(dir, 'bg-logs/.status-interrupted.json')
    const interrupt = new AbortController()
    const outcome = startBoxBuilds({
      boxes: ['tiny', 'debian-12'],
      script: build,
      logsDir: path.join(dir, 'bg-logs'),
      statusFile,
      timeoutMs: 60_000,
      signal: interrupt.signal,
      say: () => {},
    })
    setTimeout(() => interrupt.abort(), 300)
    const {failures} = await outcome
    expect(failures.tiny).toContain('was interrupted')
    expect(failures['debian-12']).toContain('not built: the test run was interrupted')
    expect(JSON.parse(readFileSync(statusFile, 'utf8')).failures).toEqual(failures)
  })

  it('awaitBoxBuilds leaves the event loop free while it waits, and gives up after its time with the boxes named', async () => {
    const statusFile = path.join(dir, 'never.json')
    let ticks = 0
    const ticker = setInterval(() => ticks++, 20)
    await expect(awaitBoxBuilds({boxes: ['debian-12-cloud'], statusFile, waitMs: 400}, 50)).rejects.toThrow(
      /debian-12-cloud box\(es\) started by the e2e global setup did not end within 0 s .*never\.json/,
    )
    clearInterval(ticker)
    expect(ticks).toBeGreaterThanOrEqual(10)
  })

  it('the e2e project waits for the builds in a setup file before each file', () => {
    const e2e = config.test?.projects?.find(
      (project): project is {test: {name: string; setupFiles?: string[]}} =>
        typeof project === 'object' && project !== null && 'test' in project && (project.test as {name?: string}).name === 'e2e',
    )
    expect(e2e?.test.setupFiles).toEqual(['test/helpers/e2e-await-boxes.ts'])
    expect(existsSync(path.join(repoRoot, 'test/helpers/e2e-await-boxes.ts'))).toBe(true)
  })
})

describe('boxes/build.sh --stale and the lookup of built boxes', () => {
  const recipeHash = (box: string) =>
    execFileSync(
      'bash',
      [
        '-c',
        'cd "$1" && find build.sh lib keys/vmfile_insecure_key.pub "$2" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64',
        '_',
        path.join(repoRoot, 'boxes'),
        box,
      ],
      {encoding: 'utf8'},
    ).trim()

  /** A published box as boxes/build.sh leaves it: archive, catalog, stamp. */
  function publish(out: string, box: string, stampHash = recipeHash(box)): string {
    const vmfileDir = path.join(out, 'vmfile')
    mkdirSync(vmfileDir, {recursive: true})
    const file = `${box}-1.0.0-amd64.box`
    writeFileSync(path.join(vmfileDir, file), 'box')
    writeFileSync(
      path.join(vmfileDir, `${box}.json`),
      JSON.stringify({name: `vmfile/${box}`, versions: [{version: '1.0.0', providers: [{url: file}]}]}),
    )
    writeFileSync(path.join(vmfileDir, `.${box}.stamp`), `${stampHash} ${file}\n`)
    return path.join(vmfileDir, file)
  }

  it('lists the boxes missing from the output directory, without root or network', async () => {
    const out = path.join(dir, 'out-empty')
    expect(await staleBoxes(['tiny', 'debian-12'], {...process.env, VM_BOXES_OUT: out})).toEqual(['tiny', 'debian-12'])
    expect(existsSync(out)).toBe(false)
  })

  it('a published box is current; another recipe, a missing archive or catalog makes it stale', async () => {
    const out = path.join(dir, 'out-published')
    const env = {...process.env, VM_BOXES_OUT: out}
    const tiny = publish(out, 'tiny')
    publish(out, 'debian-12', '0'.repeat(64))
    expect(await staleBoxes(['tiny', 'debian-12'], env)).toEqual(['debian-12'])
    rmSync(tiny)
    expect(await staleBoxes(['tiny'], env)).toEqual(['tiny'])
    publish(out, 'tiny')
    rmSync(path.join(out, 'vmfile/tiny.json'))
    expect(await staleBoxes(['tiny'], env)).toEqual(['tiny'])
  })

  it("a box made from another box's tree is stale when that box's recipe changes (debian-12-cloud from debian-12)", async () => {
    // A copy of boxes/, so that a recipe can be changed.
    const boxes = path.join(dir, 'boxes-copy')
    execFileSync('cp', ['-r', path.join(repoRoot, 'boxes'), boxes])
    rmSync(path.join(boxes, 'dist'), {recursive: true, force: true})
    const script = path.join(boxes, 'build.sh')
    const out = path.join(dir, 'out-based')
    const env = {...process.env, VM_BOXES_OUT: out}
    const hashOf = (box: string) =>
      execFileSync(
        'bash',
        [
          '-c',
          'cd "$1" && find build.sh lib keys/vmfile_insecure_key.pub "$2" $(cat "$2/base" 2>/dev/null) -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64',
          '_',
          boxes,
          box,
        ],
        {encoding: 'utf8'},
      ).trim()
    expect(readFileSync(path.join(boxes, 'debian-12-cloud/base'), 'utf8').trim()).toBe('debian-12')
    publish(out, 'debian-12', hashOf('debian-12'))
    publish(out, 'debian-12-cloud', hashOf('debian-12-cloud'))
    expect(await staleBoxes(['debian-12', 'debian-12-cloud'], env, script)).toEqual([])
    writeFileSync(path.join(boxes, 'debian-12/hooks/essential.sh'), '\n# changed\n', {flag: 'a'})
    expect(await staleBoxes(['debian-12', 'debian-12-cloud'], env, script)).toEqual(['debian-12', 'debian-12-cloud'])
  })

  it('an unknown box name is refused', async () => {
    await expect(staleBoxes(['nonesuch'], {...process.env, VM_BOXES_OUT: path.join(dir, 'x')})).rejects.toThrow(/unknown box 'nonesuch'/)
  })

  it('the workers only look boxes up in $VM_BOXES_OUT and say what to do when one is missing', () => {
    const out = path.join(dir, 'out-lookup')
    vi.stubEnv('VM_BOXES_OUT', out)
    try {
      expect(() => builtBox('tiny')).toThrow(/no built tiny box in .*out-lookup\/vmfile.*sudo npm run boxes -- tiny/)
      // Nothing was built or created.
      expect(existsSync(out)).toBe(false)
      const tiny = publish(out, 'tiny')
      expect(builtBox('tiny')).toBe(tiny)
      expect(findBuiltBox('tiny')).toBe(tiny)
      expect(readdirSync(path.join(out, 'vmfile')).sort()).toEqual(['.tiny.stamp', 'tiny-1.0.0-amd64.box', 'tiny.json'])
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('the e2e project builds missing boxes in a global setup', () => {
    const e2e = config.test?.projects?.find(
      (project): project is {test: {name: string; globalSetup?: string[]}} =>
        typeof project === 'object' && project !== null && 'test' in project && (project.test as {name?: string}).name === 'e2e',
    )
    expect(e2e?.test.globalSetup).toEqual(['test/global-setup-e2e.ts'])
    expect(existsSync(path.join(repoRoot, 'test/global-setup-e2e.ts'))).toBe(true)
  })
})
