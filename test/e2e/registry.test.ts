import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startRegistry, type TestRegistry} from '../helpers/oci-registry.js'
import {builtBox, installBox, root, vm, type CliResult} from '../helpers/vm-cli.js'

/**
 * The tiny box through a real registry with the CLI, as a team would use it: Debian's
 * docker-registry on 127.0.0.1 with htpasswd auth and a self-signed certificate (trusted through
 * NODE_EXTRA_CA_CERTS for `vm up` and --cacert for the box commands). The publisher logs in and
 * pushes; a user with an empty store logs in and boots a Vmfile whose box_url is oci://. One
 * boot. The registry mechanics without VMs (reuse, resume, tampering) are in
 * test/unit/oci-registry.test.ts.
 */
let registry: TestRegistry
let publisher: string
let user: string
let project: string

function login(home: string, password: string): {code: number | null; stderr: string} {
  const result = spawnSync(
    process.execPath,
    [path.join(root, 'bin/run.js'), 'box', 'login', registry.host, '-u', 'team', '--password-stdin', '--cacert', registry.caFile!],
    {
      input: `${password}\n`,
      encoding: 'utf8',
      env: {...process.env, VM_HOME: home, DOCKER_CONFIG: path.join(home, 'docker'), NO_COLOR: '1'},
    },
  )
  return {code: result.status, stderr: result.stderr}
}

function userRun(args: string[]): Promise<CliResult> {
  return vm(args, {
    cwd: project,
    env: {VM_HOME: user, DOCKER_CONFIG: path.join(user, 'docker'), NODE_EXTRA_CA_CERTS: registry.caFile},
    timeoutMs: 300_000,
  })
}

beforeAll(async () => {
  registry = await startRegistry({tls: true, auth: {user: 'team', password: 'box-pass'}})
  publisher = mkdtempSync(path.join(tmpdir(), 'vm-e2e-registry-pub-'))
  user = mkdtempSync(path.join(tmpdir(), 'vm-e2e-registry-user-'))
  project = mkdtempSync(path.join(tmpdir(), 'vm-e2e-registry-'))
  chmodSync(project, 0o755)
  installBox(builtBox('tiny'), path.join(publisher, 'data/boxes'), 'vmfile/tiny', '1.0.0')
})

afterAll(async () => {
  if (project !== undefined) await userRun(['destroy', '-f'])
  await registry?.stop()
  for (const dir of [publisher, user, project]) if (dir !== undefined) rmSync(dir, {recursive: true, force: true})
})

describe('a box pushed to an OCI registry and booted from it', () => {
  it('refuses a wrong password, pushes after a login, and boots the pulled box from box_url: oci://', async () => {
    const wrong = login(publisher, 'not-the-password')
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/refused the credentials/)
    expect(login(publisher, 'box-pass').code).toBe(0)
    expect(statSync(path.join(publisher, 'config/credentials.json')).mode & 0o777).toBe(0o600)

    const target = `oci://${registry.host}/vmfile/tiny`
    const pushed = await vm(['box', 'push', 'vmfile/tiny', target, '--cacert', registry.caFile!, '--json'], {
      cwd: publisher,
      env: {VM_HOME: publisher, DOCKER_CONFIG: path.join(publisher, 'docker')},
    })
    expect(pushed.code, pushed.stderr).toBe(0)
    const push = JSON.parse(pushed.stdout).result as {reference: string; digest: string; bytesSent: number; size: number}
    expect(push.reference).toBe(`${target}:1.0.0`)

    // The user: nothing stored; without a login the registry refuses, with one vm up pulls and boots.
    writeFileSync(path.join(project, 'Vmfile'), `box: vmfile/tiny\nbox_url: ${target}:1.0.0\ncpus: 1\nmemory: 256\nsynced_folders: false\n`)
    const refused = await userRun(['up', '--json'])
    expect(refused.code).toBe(1)
    expect(refused.stdout + refused.stderr).toMatch(/REGISTRY_AUTH|wants credentials/)
    expect(login(user, 'box-pass').code).toBe(0)
    const up = await userRun(['up', '--json'])
    expect(up.code, up.stderr).toBe(0)
    const said = await userRun(['ssh', '-c', 'echo pulled-box-runs'])
    expect(said.stdout.trim()).toBe('pulled-box-runs')

    const listed = await userRun(['box', 'list', '--json'])
    const boxes = JSON.parse(listed.stdout).result.boxes as Array<{name: string; version: string}>
    expect(boxes).toEqual([expect.objectContaining({name: 'vmfile/tiny', version: '1.0.0'})])
    const source = JSON.parse(
      readFileSync(path.join(user, 'data/boxes/vmfile-VAGRANTSLASH-tiny/1.0.0/amd64/libvirt/source.json'), 'utf8'),
    ) as {url: string; oci: {digest: string}}
    expect(source.url).toBe(`${target}:1.0.0`)
    expect(source.oci.digest).toBe(push.digest)

    const outdated = await userRun(['box', 'outdated', '--json'])
    expect(outdated.code, outdated.stderr).toBe(0)
    expect(JSON.parse(outdated.stdout).result.boxes).toEqual([
      expect.objectContaining({name: 'vmfile/tiny', installed: '1.0.0', latest: '1.0.0', outdated: false}),
    ])
  })
})
