import {writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'

import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

describe('forwarded ports with the tiny box', () => {
  let fixture: MachineFixture
  let project: string
  let blocker: Server
  const run = (args: string[]) => fixture.run(args)

  beforeAll(async () => {
    // A space in the project path: every path vm hands to QEMU and ssh must survive it.
    fixture = machineFixture('fwd', 'tiny', {projectPrefix: 'vm e2e fwd-'})
    project = fixture.project
    blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(46451, '127.0.0.1', resolve))
  })

  afterAll(async () => {
    blocker.close()
    await fixture.cleanup()
  })

  it('a host port already taken is an error naming the port and the machine; nothing is left running', async () => {
    writeFileSync(
      path.join(project, 'Vmfile'),
      'box: vmfile/tiny\ncpus: 1\nmemory: 256\nforwarded_ports:\n  - {guest: 8000, host: 46451}\n',
    )
    const up = await run(['up'])
    expect(up.code).toBe(1)
    expect(up.stderr).toContain('Host port 127.0.0.1:46451/tcp (forwarded to guest port 8000 of machine default) is already in use')
    expect(up.stderr).toContain('auto_correct: true')
    const status = JSON.parse((await run(['status', '--json'])).stdout).result.machines[0]
    expect(status.state).toBe('poweroff')
  })

  it('auto_correct forwards a free port instead, reported by up and vm port; TCP traffic flows', async () => {
    writeFileSync(
      path.join(project, 'Vmfile'),
      'box: vmfile/tiny\ncpus: 1\nmemory: 256\nforwarded_ports:\n  - {guest: 8000, host: 46451, auto_correct: true}\n',
    )
    await run(['destroy', '-f'])
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toMatch(/host port 46451 for guest port 8000 is in use; forwarding 127\.0\.0\.1:(\d+) instead/)
    const host = Number((await run(['port', '--guest', '8000'])).stdout.trim())
    expect(host).toBeGreaterThanOrEqual(2200)
    expect((await run(['port'])).stdout).toContain(`8000 (guest) => 127.0.0.1:${host} (host) tcp (auto_correct: 46451 was taken)`)
    const serve = await run([
      'ssh',
      '-c',
      'mkdir -p /tmp/www && echo hello-through-forward > /tmp/www/index.html && busybox httpd -p 8000 -h /tmp/www',
    ])
    expect(serve.code, serve.stderr).toBe(0)
    const response = await fetch(`http://127.0.0.1:${host}/index.html`)
    expect((await response.text()).trim()).toBe('hello-through-forward')
  })
})
