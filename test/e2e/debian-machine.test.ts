import {createSocket} from 'node:dgram'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'

import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

/** The Debian box: a real systemd guest with OpenSSH, sudo and rsync, booted from its disk. */
describe('a Debian 12 machine', () => {
  let fixture: MachineFixture
  let project: string
  const run = (args: string[]) => fixture.run(args)
  const guest = (command: string) => fixture.guest(command)

  let udpPort: number

  beforeAll(async () => {
    // A UDP port nothing holds now, for a forwarded port.
    const probe = createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve))
    udpPort = probe.address().port
    probe.close()
    fixture = machineFixture('deb', 'debian-12', {timeoutMs: 600_000})
    project = fixture.project
    mkdirSync(path.join(project, 'src/node_modules'), {recursive: true})
    writeFileSync(path.join(project, 'src/app.txt'), 'app\n')
    writeFileSync(path.join(project, 'src/node_modules/skip.txt'), 'excluded\n')
    writeFileSync(path.join(project, 'bin.sh'), '#!/bin/sh\necho "$1 as $(id -un) with $GREETING"\n')
    writeFileSync(
      path.join(project, 'Vmfile'),
      [
        'box: vmfile/debian-12',
        'cpus: 2',
        'memory: 1G',
        'forwarded_ports:',
        `  - {guest: 5300, host: ${udpPort}, protocol: udp}`,
        'networks:',
        '  - {type: private, ip: 192.168.57.5/24, name: deb-e2e}',
        'synced_folders:',
        '  - {host: ., guest: /vm}',
        '  - {host: src, guest: /srv/src, type: rsync, exclude: [node_modules/]}',
        'provision:',
        '  - {type: shell, name: root, inline: "id -u > /tmp/root-id"}',
        '  - {type: shell, name: user, path: bin.sh, args: [hello], env: {GREETING: hi}, privileged: false}',
        '',
      ].join('\n'),
    )
  })

  afterAll(() => fixture.cleanup())

  it('boots to SSH, provisions, mounts 9p and copies rsync folders with excludes', async () => {
    const start = Date.now()
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    console.log(`debian-12: vm up (with provisioning) in ${((Date.now() - start) / 1000).toFixed(1)} s`)
    expect(up.stdout).toContain('[default] hello as vm with hi')
    expect(await guest('cat /tmp/root-id')).toBe('0')
    expect(up.stdout).toContain('-> /vm (9p, chosen automatically)')
    expect(up.stdout).toContain(`${path.join(project, 'src')} -> /srv/src (rsync)`)
    expect(await guest('find /srv/src -type f | sort')).toBe('/srv/src/app.txt')
    expect(await guest('sudo -n sh -c "echo from-guest > /vm/guest.txt"; cat /vm/bin.sh | head -1')).toBe('#!/bin/sh')
    expect(readFileSync(path.join(project, 'guest.txt'), 'utf8')).toBe('from-guest\n')
  })

  it('the private NIC has its static address through systemd-networkd; a forwarded UDP port carries datagrams', async () => {
    expect(await guest('ip -4 -o addr show to 192.168.57.0/24 | cut -d" " -f2- | tr -s " " | cut -d" " -f1-3')).toMatch(
      /^\S+ inet 192\.168\.57\.5\/24$/,
    )
    expect(await guest('ls /run/systemd/network/')).toMatch(/^05-vmfile-\S+\.network$/)
    const status = JSON.parse((await run(['status', '--json'])).stdout).result.machines[0]
    expect(status.networks[1]).toMatchObject({type: 'private', network: 'deb-e2e', address: '192.168.57.5/24'})
    // A UDP echo server in the guest (perl is part of every Debian system).
    const echo = `use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 5300, Proto => "udp") or die; while (1) { my $m; $s->recv($m, 2048); $s->send("echo:$m") }`
    expect((await run(['ssh', '-c', `setsid perl -e '${echo}' </dev/null >/dev/null 2>&1 & sleep 1`])).code).toBe(0)
    const client = createSocket('udp4')
    try {
      // UDP may be lost, and perl may still be starting: send until the echo comes back.
      const reply = await new Promise<string>((resolve, reject) => {
        const send = (): void => client.send('ping-over-udp', udpPort, '127.0.0.1')
        const resend = setInterval(send, 500)
        const timer = setTimeout(() => {
          clearInterval(resend)
          reject(new Error('no UDP reply within 20 s'))
        }, 20_000)
        client.on('message', (message) => {
          clearTimeout(timer)
          clearInterval(resend)
          resolve(message.toString())
        })
        send()
      })
      expect(reply).toBe('echo:ping-over-udp')
    } finally {
      client.close()
    }
  })

  it('vm rsync copies host changes again', async () => {
    writeFileSync(path.join(project, 'src/new.txt'), 'new\n')
    const rsync = await run(['rsync'])
    expect(rsync.code, rsync.stderr).toBe(0)
    expect(await guest('cat /srv/src/new.txt')).toBe('new')
  })

  it('halts through ACPI and boots again from its disk', async () => {
    const write = await run(['ssh', '-c', 'echo kept | sudo -n tee /var/tmp/kept >/dev/null'])
    expect(write.code, write.stderr).toBe(0)
    const halt = await run(['halt'])
    expect(halt.stdout, halt.stderr).toContain('[default] powered off')
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(await guest('cat /var/tmp/kept')).toBe('kept')
  })
})
