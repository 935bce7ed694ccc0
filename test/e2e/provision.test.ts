import {randomBytes} from 'node:crypto'
import {chmodSync, mkdirSync, writeFileSync} from 'node:fs'

import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

describe('provisioning over SSH with the tiny box', () => {
  let fixture: MachineFixture
  let project: string
  const run = (args: string[]) => fixture.run(args)
  const guest = (command: string) => fixture.guest(command)

  beforeAll(() => {
    fixture = machineFixture('prov', 'tiny')
    project = fixture.project
    mkdirSync(path.join(project, 'tree/sub'), {recursive: true})
    writeFileSync(path.join(project, 'tree/readme.txt'), 'tree file\n')
    writeFileSync(path.join(project, 'tree/sub/tool.sh'), '#!/bin/sh\n')
    chmodSync(path.join(project, 'tree/sub/tool.sh'), 0o750)
    mkdirSync(path.join(project, 'bulk'))
    writeFileSync(path.join(project, 'bulk/blob.bin'), randomBytes(4 * 1024 * 1024))
    writeFileSync(path.join(project, 'app.conf'), 'key=value\n')
    chmodSync(path.join(project, 'app.conf'), 0o640)
    writeFileSync(path.join(project, 'setup.sh'), '#!/bin/sh\necho "args=$1|$2 env=$GREETING user=$(id -un)"\necho "warn" >&2\n')
    writeFileSync(
      path.join(project, 'fail-once.sh'),
      '#!/bin/sh\nif [ ! -e /tmp/second-try ]; then touch /tmp/second-try; echo failing >&2; exit 3; fi\necho recovered\n',
    )
    writeFileSync(
      path.join(project, 'Vmfile'),
      [
        'box: vmfile/tiny',
        'cpus: 1',
        'memory: 256',
        'synced_folders: false',
        'provision:',
        '  - {type: shell, name: root, inline: ["id -u > /tmp/root-id", "echo once >> /tmp/once.log"]}',
        '  - {type: shell, name: script, path: setup.sh, args: [one, "two words"], env: {GREETING: hello}, privileged: false}',
        '  - {type: file, name: conf, source: app.conf, destination: /tmp/etc/app.conf}',
        '  - {type: file, name: tree, source: tree, destination: /tmp/tree}',
        '  - {type: shell, name: flaky, path: fail-once.sh}',
        '  - {type: shell, name: after, inline: "touch /tmp/after-ran"}',
        '  - {type: shell, name: every, run: always, inline: "echo x >> /tmp/always.log"}',
        '  - {type: shell, name: manual, run: never, inline: "touch /tmp/manual-ran"}',
        '  - {type: file, name: denied, run: never, source: bulk, destination: /root/denied}',
        '',
      ].join('\n'),
    )
  })

  afterAll(() => fixture.cleanup())

  it('a failing provisioner names itself and its status, stops the rest, and vm exits non-zero', async () => {
    const up = await run(['up'])
    expect(up.code).toBe(1)
    expect(up.stderr).toContain('Provisioner "flaky" (shell) of machine default failed with exit status 3')
    expect(up.stderr).toContain('[default] failing') // stderr stays stderr, prefixed
    expect(up.stdout).toContain('[default] args=one|two words env=hello user=vm')
    expect(await guest('test -e /tmp/after-ran && echo yes || echo no')).toBe('no')
    expect(await guest('cat /tmp/root-id')).toBe('0')
  })

  it('uploads files and directories keeping modes', async () => {
    expect(await guest('cat /tmp/etc/app.conf; stat -c %a /tmp/etc/app.conf')).toBe('key=value\n640')
    expect(await guest('cat /tmp/tree/readme.txt; stat -c %a /tmp/tree/sub/tool.sh')).toBe('tree file\n750')
  })

  it('the next up retries, since the machine was not marked provisioned', async () => {
    await run(['halt'])
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toContain('[default] recovered')
    expect(await guest('test -e /tmp/after-ran && echo yes')).toBe('yes')
    expect(await guest('cat /tmp/once.log')).toBe('once\nonce')
  })

  it('once provisioners then stay quiet; always ones run on every up', async () => {
    await run(['halt'])
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toContain('provisioning: every (shell)')
    expect(up.stdout).not.toContain('provisioning: root')
    expect(await guest('wc -l < /tmp/always.log')).toBe('2')
  })

  it('--provision-with runs just the named ones, run: never included; --no-provision none', async () => {
    const provision = await run(['provision', '--provision-with', 'manual'])
    expect(provision.code, provision.stderr).toBe(0)
    expect(await guest('test -e /tmp/manual-ran && echo yes')).toBe('yes')
    await run(['halt'])
    expect((await run(['up', '--no-provision'])).stdout).not.toContain('provisioning:')
    expect(await guest('wc -l < /tmp/always.log')).toBe('2')
  })
  it('an upload the guest refuses fails cleanly, naming the provisioner', async () => {
    const provision = await run(['provision', '--provision-with', 'denied'])
    expect(provision.code).toBe(1)
    expect(provision.stderr).toContain("[default] mkdir: can't create directory '/root/denied': Permission denied")
    expect(provision.stderr).toContain('Provisioner "denied" (file) of machine default failed with exit status 1')
    expect(provision.stderr).not.toContain('EPIPE')
    expect(provision.stderr).not.toContain('tar:') // tar's complaint about the closed pipe is left out
  })
})
