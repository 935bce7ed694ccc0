import {execFileSync} from 'node:child_process'

import {describe, expect, it} from 'vitest'

import {
  instanceIdFor,
  MERGE_TYPE,
  metaData,
  networkConfig,
  seedFiles,
  userData,
  userDataFormat,
  vmCloudConfig,
} from '../../src/cloud-init/seed.js'
import {UserError} from '../../src/errors/errors.js'

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests vm@web'

interface ParsedPart {
  type: string
  filename: string | null
  mergeType: string | null
  payload: string
}

/**
 * Reads user-data the way cloud-init does (its user_data.py): Python's email module parses the
 * message from a str, and each part's payload is decoded (Content-Transfer-Encoding) to bytes,
 * then from UTF-8. Every leaf part, nested multiparts walked, in order.
 */
function parseLikeCloudInit(text: string): ParsedPart[] {
  const script = `
import email, json, sys
msg = email.message_from_string(sys.stdin.buffer.read().decode('utf-8'))
parts = []
for part in msg.walk():
    if part.is_multipart():
        continue
    payload = part.get_payload(decode=True)
    parts.append({'type': part.get_content_type(), 'filename': part.get_filename(),
                  'mergeType': part.get('Merge-Type'), 'payload': payload.decode('utf-8', 'surrogateescape')})
print(json.dumps({'multipart': msg.is_multipart(), 'parts': parts}))
`
  const out = execFileSync('python3', ['-c', script], {input: Buffer.from(text, 'utf8')}).toString('utf8')
  const parsed = JSON.parse(out) as {multipart: boolean; parts: ParsedPart[]}
  expect(parsed.multipart).toBe(true)
  return parsed.parts
}

const VM_PART = `#cloud-config
{
  "users": [
    {
      "name": "vm",
      "sudo": "ALL=(ALL) NOPASSWD:ALL",
      "shell": "/bin/bash",
      "lock_passwd": true,
      "ssh_authorized_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests vm@web"
      ]
    }
  ],
  "ssh_pwauth": false
}
`

describe('instance-id', () => {
  it('is the machine id and a hash of its creation time, the same on every call', () => {
    const machine = {id: '0123456789abcdef', createdAt: '2026-11-30T19:00:00.000Z'}
    const id = instanceIdFor(machine)
    expect(id).toMatch(/^vm-0123456789abcdef-[0-9a-f]{12}$/)
    expect(instanceIdFor({...machine})).toBe(id)
  })

  it('changes when the machine is recreated (a new createdAt), not otherwise', () => {
    const first = instanceIdFor({id: '0123456789abcdef', createdAt: '2026-11-30T19:00:00.000Z'})
    const again = instanceIdFor({id: '0123456789abcdef', createdAt: '2026-11-30T19:05:00.000Z'})
    expect(again).not.toBe(first)
    expect(instanceIdFor({id: 'fedcba9876543210', createdAt: '2026-11-30T19:00:00.000Z'})).not.toBe(first)
  })

  it('refuses a record without a creation time', () => {
    expect(() => instanceIdFor({id: '0123456789abcdef', createdAt: ''})).toThrow(UserError)
  })
})

describe('meta-data', () => {
  it('holds the instance-id and the hostname, as JSON', () => {
    expect(metaData({instanceId: 'vm-0123456789abcdef-a1b2c3d4e5f6', hostname: 'web.local'})).toBe(
      '{\n  "instance-id": "vm-0123456789abcdef-a1b2c3d4e5f6",\n  "local-hostname": "web.local"\n}\n',
    )
  })

  it('refuses a hostname cloud-init cannot set, saying what to use', () => {
    for (const hostname of ['', 'under_score', '-lead', 'a..b', 'x'.repeat(64), 'sp ace', 'new\nline']) {
      expect(() => metaData({instanceId: 'i', hostname}), hostname).toThrow(/Invalid hostname/)
    }
  })
})

describe("vm's user-data", () => {
  it('creates the SSH user with passwordless sudo, bash, a locked password and the key, and no password logins', () => {
    expect(vmCloudConfig({user: 'vm', publicKey: KEY})).toBe(VM_PART)
    // Without user-data of the user's own, it is the whole user-data.
    expect(userData({user: 'vm', publicKey: `${KEY}\n`})).toBe(VM_PART)
    expect(userData({user: 'vm', publicKey: KEY, extra: ' \n'})).toBe(VM_PART)
  })

  it('refuses a user name or key that would not be one safe line', () => {
    expect(() => vmCloudConfig({user: 'Root Admin', publicKey: KEY})).toThrow(/Invalid SSH user name/)
    expect(() => vmCloudConfig({user: 'vm', publicKey: `${KEY}\nssh-rsa AAAA second`})).toThrow(/single OpenSSH public key/)
    expect(() => vmCloudConfig({user: 'vm', publicKey: 'not a key'})).toThrow(UserError)
  })
})

describe("user-data combined with the user's own", () => {
  it('is a MIME multipart/mixed message: the user part, then vm part, both with the merge rules', () => {
    const extra = '#cloud-config\nruncmd:\n  - echo hi\n'
    expect(userData({user: 'vm', publicKey: KEY, extra})).toBe(
      [
        'Content-Type: multipart/mixed; boundary="==vm-part-0=="',
        'MIME-Version: 1.0',
        '',
        '--==vm-part-0==',
        'Content-Type: text/cloud-config; charset="utf-8"',
        'MIME-Version: 1.0',
        'Content-Transfer-Encoding: 7bit',
        'Content-Disposition: attachment; filename="user-data"',
        'Merge-Type: list(append)+dict(no_replace,recurse_list)+str()',
        '',
        '#cloud-config',
        'runcmd:',
        '  - echo hi',
        '',
        '--==vm-part-0==',
        'Content-Type: text/cloud-config; charset="utf-8"',
        'MIME-Version: 1.0',
        'Content-Transfer-Encoding: 7bit',
        'Content-Disposition: attachment; filename="vm.cfg"',
        'Merge-Type: list(append)+dict(no_replace,recurse_list)+str()',
        '',
        VM_PART,
        '--==vm-part-0==--',
        '',
      ].join('\n'),
    )
  })

  it('reads back, as cloud-init parses it, into both documents exactly, with the merge rules', () => {
    const extra = '#cloud-config\nusers:\n  - name: alice\nwrite_files:\n  - path: /etc/motd\n    content: hi\n'
    const parts = parseLikeCloudInit(userData({user: 'vm', publicKey: KEY, extra}))
    expect(parts).toEqual([
      {type: 'text/cloud-config', filename: 'user-data', mergeType: MERGE_TYPE, payload: extra},
      {type: 'text/cloud-config', filename: 'vm.cfg', mergeType: MERGE_TYPE, payload: VM_PART},
    ])
  })

  it('keeps unicode exact (base64 for any part that is not ASCII)', () => {
    const extra = '#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: "héllo wörld ✓ 日本語 🚀"\n'
    const text = userData({user: 'vm', publicKey: KEY, extra})
    expect(text).toContain('Content-Transfer-Encoding: base64')
    expect(parseLikeCloudInit(text)[0]!.payload).toBe(extra)
  })

  it('keeps a user part that is not cloud-config, with its own content type', () => {
    const script = '#!/bin/sh\necho "set up" > /var/tmp/done\n'
    const parts = parseLikeCloudInit(userData({user: 'vm', publicKey: KEY, extra: script}))
    expect(parts).toEqual([
      {type: 'text/x-shellscript', filename: 'user-data', mergeType: null, payload: script},
      {type: 'text/cloud-config', filename: 'vm.cfg', mergeType: MERGE_TYPE, payload: VM_PART},
    ])
  })

  it('keeps a user part that is a multipart message itself: its parts come first', () => {
    const nested = [
      'Content-Type: multipart/mixed; boundary="inner"',
      'MIME-Version: 1.0',
      '',
      '--inner',
      'Content-Type: text/x-shellscript',
      '',
      '#!/bin/sh',
      'true',
      '--inner',
      'Content-Type: text/cloud-config',
      '',
      '#cloud-config',
      'packages: [htop]',
      '--inner--',
      '',
    ].join('\n')
    const parts = parseLikeCloudInit(userData({user: 'vm', publicKey: KEY, extra: nested}))
    expect(parts.map((part) => [part.type, part.payload])).toEqual([
      ['text/x-shellscript', '#!/bin/sh\ntrue'],
      ['text/cloud-config', '#cloud-config\npackages: [htop]'],
      ['text/cloud-config', VM_PART],
    ])
  })

  it('picks a boundary that appears in no part', () => {
    const extra = '#!/bin/sh\n# --==vm-part-0== and ==vm-part-1== are taken\necho ok\n'
    const text = userData({user: 'vm', publicKey: KEY, extra})
    expect(text.split('\n', 1)[0]).toBe('Content-Type: multipart/mixed; boundary="==vm-part-2=="')
    const parts = parseLikeCloudInit(text)
    expect(parts.map((part) => part.payload)).toEqual([extra, VM_PART])
    for (const part of parts) expect(part.payload).not.toContain('==vm-part-2==')
  })

  it('names the content type of every cloud-init format by its first line', () => {
    const cases: Array<[string, string]> = [
      ['#cloud-config\n{}', 'text/cloud-config'],
      ['#cloud-config-archive\n[]', 'text/cloud-config-archive'],
      ['#cloud-config-jsonp\n[]', 'text/cloud-config-jsonp'],
      ['#include\nhttp://127.0.0.1/x', 'text/x-include-url'],
      ['#include-once\nhttp://127.0.0.1/x', 'text/x-include-once-url'],
      ['#cloud-boothook\n#!/bin/sh', 'text/cloud-boothook'],
      ['#part-handler\n', 'text/part-handler'],
      ['## template: jinja\n#cloud-config', 'text/jinja2'],
      ['#!/usr/bin/env python3\n', 'text/x-shellscript'],
      ['Content-Type: multipart/mixed; boundary=x\n', 'message'],
    ]
    for (const [text, type] of cases) expect(userDataFormat(text), text).toBe(type)
  })

  it('refuses user-data that cloud-init would ignore, saying how it must begin', () => {
    expect(() => userData({user: 'vm', publicKey: KEY, extra: 'runcmd:\n  - echo\n'})).toThrow(/announces no format/)
    try {
      userDataFormat('users: []')
    } catch (error) {
      expect((error as UserError).hint).toMatch(/#cloud-config/)
    }
  })
})

describe('network-config and the seed files', () => {
  it('passes network-config through, with a final newline; none when absent or blank', () => {
    expect(networkConfig('version: 2\nethernets:\n  eth0: {dhcp4: true}')).toBe('version: 2\nethernets:\n  eth0: {dhcp4: true}\n')
    expect(networkConfig('network:\n  version: 1\n')).toBe('network:\n  version: 1\n')
    expect(networkConfig(undefined)).toBeUndefined()
    expect(networkConfig('  \n')).toBeUndefined()
  })

  it('lists meta-data and user-data, and network-config only when given', () => {
    const base = {instanceId: 'vm-0123456789abcdef-a1b2c3d4e5f6', hostname: 'web', user: 'vm', publicKey: KEY}
    expect(seedFiles(base).map((file) => file.name)).toEqual(['meta-data', 'user-data'])
    const files = seedFiles({...base, networkConfig: 'version: 2\n', userData: '#!/bin/sh\ntrue\n'})
    expect(files.map((file) => file.name)).toEqual(['meta-data', 'user-data', 'network-config'])
    expect(files[2]!.content).toBe('version: 2\n')
    expect(String(files[1]!.content)).toContain('multipart/mixed')
  })
})
