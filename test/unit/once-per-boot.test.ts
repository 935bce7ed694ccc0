import {mkdtempSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {firstTimeThisBoot} from '../../src/state/once-per-boot.js'

function setup(): {env: NodeJS.ProcessEnv; bootIdFile: string; runtime: string} {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-once-'))
  const bootIdFile = path.join(dir, 'boot_id')
  writeFileSync(bootIdFile, '5b1f0f2e-0c7d-4f7e-9a53-1d2b3c4d5e6f\n')
  const runtime = path.join(dir, 'run')
  return {env: {VM_RUNTIME_DIR: runtime}, bootIdFile, runtime}
}

describe('a notice once per host boot', () => {
  it('is due the first time only, for every process of the user, until the host reboots', async () => {
    const {env, bootIdFile, runtime} = setup()
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(true)
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(false)
    // Another key is its own notice.
    expect(await firstTimeThisBoot('other', {env, bootIdFile})).toBe(true)
    // A reboot: a new boot id makes it due again, and the old marker goes.
    writeFileSync(bootIdFile, '0a0b0c0d-1111-2222-3333-444455556666\n')
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(true)
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(false)
    expect(readdirSync(path.join(runtime, 'notices')).filter((name) => name.startsWith('kvm.'))).toEqual([
      'kvm.0a0b0c0d-1111-2222-3333-444455556666',
    ])
  })

  it('goes to exactly one of many callers at once', async () => {
    const {env, bootIdFile} = setup()
    const answers = await Promise.all(Array.from({length: 8}, () => firstTimeThisBoot('kvm', {env, bootIdFile})))
    expect(answers.filter(Boolean)).toHaveLength(1)
  })

  it('is always due when the boot id cannot be read', async () => {
    const {env} = setup()
    const bootIdFile = '/nonexistent/boot_id'
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(true)
    expect(await firstTimeThisBoot('kvm', {env, bootIdFile})).toBe(true)
  })
})
