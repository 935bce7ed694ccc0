import {spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {lockMachine} from '../../src/machine/lock.js'
import {addToIndex, listIndex} from '../../src/state/global-index.js'

describe('machine lock', () => {
  it('a second holder gets an error naming the process that holds the machine', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-lock-'))
    const holder = spawn('sleep', ['30'])
    try {
      writeFileSync(path.join(dir, 'lock'), String(holder.pid))
      await expect(lockMachine(path.join(dir, 'lock'), 'web')).rejects.toThrow(
        new RegExp(`Machine web is busy: vm process ${holder.pid} \\(sleep 30\\)`),
      )
    } finally {
      holder.kill('SIGKILL')
    }
  })

  it('takes over a lock whose holder is gone, and releases it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vm-lock-'))
    writeFileSync(path.join(dir, 'lock'), '999999999')
    const release = await lockMachine(path.join(dir, 'lock'), 'web')
    await release()
    const again = await lockMachine(path.join(dir, 'lock'), 'web')
    await again()
  })
})

describe('global machine index', () => {
  it('repairs itself when a project directory has gone', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-'))
    const env = {VM_HOME: home}
    const projects = ['a', 'b'].map((name) => path.join(home, name))
    for (const [index, project] of projects.entries()) {
      mkdirSync(path.join(project, '.vm/machines/default'), {recursive: true})
      writeFileSync(path.join(project, '.vm/machines/default/machine.json'), '{}')
      await addToIndex({id: `id${index}`, name: 'default', projectDir: project}, env)
    }
    rmSync(projects[1]!, {recursive: true})
    const listed = await listIndex({}, env)
    expect(listed.live.map((entry) => entry.id)).toEqual(['id0'])
    expect(listed.gone.map((entry) => entry.id)).toEqual(['id1'])
    await listIndex({prune: true}, env)
    expect((await listIndex({}, env)).gone).toEqual([])
  })

  it('keeps every machine when several are added at once (machines started in parallel)', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vm-index-'))
    const env = {VM_HOME: home}
    const names = ['a', 'b', 'c', 'd', 'e']
    await Promise.all(names.map((name) => addToIndex({id: name, name, projectDir: path.join(home, name)}, env)))
    for (const name of names) {
      mkdirSync(path.join(home, name, '.vm/machines', name), {recursive: true})
      writeFileSync(path.join(home, name, '.vm/machines', name, 'machine.json'), '{}')
    }
    expect((await listIndex({}, env)).live.map((entry) => entry.id).sort()).toEqual(names)
  })
})
