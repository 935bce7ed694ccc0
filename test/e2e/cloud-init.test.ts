import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {builtBox, insecureLoginWorks, vm, type CliResult} from '../helpers/vm-cli.js'

/**
 * A cloud image as users bring one: the debian-12-cloud box's bare qcow2 disk (no user, no key,
 * cloud-init) added with `vm box add --name`, booted with the NAT NIC isolated (restrict=on: the
 * guest sends nothing beyond this host). Cloud-init boots are slow under TCG: one machine is
 * reused for the success, the key and the halt/up checks; a second one boots once to fail.
 */

const BOOT_MS = 900_000
let home: string
let project: string
let env: NodeJS.ProcessEnv

function run(args: string[]): Promise<CliResult> {
  return vm(args, {cwd: project, env, timeoutMs: BOOT_MS})
}

async function guest(command: string, machine = 'ok'): Promise<string> {
  const result = await run(['ssh', machine, '-c', command])
  expect(result.code, result.stderr).toBe(0)
  return result.stdout.trim()
}

function record(machine: string): {ssh: {port: number}; cloudInit?: {seed: string}} {
  return JSON.parse(readFileSync(path.join(project, '.vm/machines', machine, 'machine.json'), 'utf8'))
}

const userData = [
  '#cloud-config',
  'write_files:',
  '  - path: /etc/vm-e2e-written',
  '    content: written by cloud-init',
  'users:',
  '  - name: alice',
  '    shell: /bin/bash',
  'runcmd:',
  '  - echo ran >> /var/tmp/runcmd-count',
  '',
].join('\n')

const failingUserData = ['#cloud-config', 'runcmd:', '  - echo vm-e2e-failure-marker', '  - false', ''].join('\n')

beforeAll(async () => {
  home = mkdtempSync(path.join(tmpdir(), 'vm-e2e-cloud-home-'))
  project = mkdtempSync(path.join(tmpdir(), 'vm-e2e-cloud-'))
  chmodSync(project, 0o755)
  env = {VM_HOME: home}
  // The bare disk of the built box: what a distribution publishes as its cloud image.
  const untar = spawnSync('tar', ['-xf', builtBox('debian-12-cloud'), '-C', home, 'box.img'])
  expect(untar.status, String(untar.stderr)).toBe(0)
  const image = path.join(home, 'debian-12-cloud.qcow2')
  spawnSync('mv', [path.join(home, 'box.img'), image])
  const added = await run(['box', 'add', '--name', 'test/debian-12-cloud', image])
  expect(added.code, added.stderr).toBe(0)
  writeFileSync(path.join(project, 'user-data'), userData)
  writeFileSync(
    path.join(project, 'Vmfile'),
    [
      'box: test/debian-12-cloud',
      'memory: 1G',
      'boot_timeout: 800',
      'synced_folders: false',
      'nat: {isolated: true}',
      'machines:',
      '  ok:',
      '    disk: 4G',
      '    cloud_init: {user_data_file: user-data}',
      '  broken:',
      '    autostart: false',
      `    cloud_init: {user_data: ${JSON.stringify(failingUserData)}}`,
      '',
    ].join('\n'),
  )
}, BOOT_MS)

afterAll(async () => {
  await run(['destroy', '-f'])
  rmSync(project, {recursive: true, force: true})
  rmSync(home, {recursive: true, force: true})
}, BOOT_MS)

describe('a cloud image booted with cloud-init', () => {
  it(
    'boots with the user-data applied, the disk grown, the guest isolated, only the machine key trusted',
    async () => {
      const up = await run(['up', 'ok'])
      expect(up.code, up.stderr).toBe(0)
      expect(record('ok').cloudInit).toEqual({seed: 'cidata.iso'})
      expect(await guest('cat /etc/vm-e2e-written')).toBe('written by cloud-init')
      expect(await guest('id -un alice')).toBe('alice')
      expect(await guest('cat /var/tmp/runcmd-count')).toBe('ran')
      expect(await guest('cloud-init status')).toBe('status: done')
      // disk: 4G, grown inside by cloud-init (the box's disk is 2 GB).
      const sizeMiB = Number(await guest("df -BM --output=size / | tail -n 1 | tr -d ' M'"))
      expect(sizeMiB).toBeGreaterThan(3500)
      // Isolated NAT: no route out of the guest.
      expect(await guest('ip route show default')).toBe('')
      // The machine's own key is the only one the guest trusts; vm's insecure key never worked.
      const publicKey = readFileSync(path.join(project, '.vm/machines/ok/id_ed25519.pub'), 'utf8').trim()
      expect(await guest('cat ~/.ssh/authorized_keys')).toBe(publicKey)
      expect(insecureLoginWorks(home, record('ok').ssh.port)).toBe(false)
    },
    BOOT_MS,
  )

  it(
    'halt and up: the same instance, once-only modules do not run again',
    async () => {
      const instance = await guest('cat /var/lib/cloud/data/instance-id')
      expect((await run(['halt', 'ok'])).code).toBe(0)
      const up = await run(['up', 'ok'])
      expect(up.code, up.stderr).toBe(0)
      expect(await guest('cat /var/lib/cloud/data/instance-id')).toBe(instance)
      expect(await guest('cat /var/tmp/runcmd-count')).toBe('ran')
      expect(await guest('cat /etc/vm-e2e-written')).toBe('written by cloud-init')
    },
    BOOT_MS,
  )

  it(
    'a failing user-data is reported with the end of the cloud-init log',
    async () => {
      const up = await run(['up', 'broken'])
      expect(up.code).not.toBe(0)
      expect(up.stderr).toContain('cloud-init failed in machine broken')
      expect(up.stderr).toContain('vm-e2e-failure-marker')
      // The machine stays up and a second vm up checks again (and fails the same way).
      const again = await run(['up', 'broken'])
      expect(again.code).not.toBe(0)
      expect(again.stderr).toContain('cloud-init failed in machine broken')
      expect((await run(['destroy', '-f', 'broken'])).code).toBe(0)
    },
    BOOT_MS,
  )
})
