import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {inTerminal, shellWord as quote} from '../helpers/terminal.js'
import {machineFixture, root, vm, type MachineFixture} from '../helpers/vm-cli.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until `shown()` contains `text` (polled every 100 ms), failing after `timeoutMs`. */
async function until(shown: () => string, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!shown().includes(text)) {
    if (Date.now() > deadline) throw new Error(`the terminal did not show ${JSON.stringify(text)} within ${timeoutMs / 1000} s`)
    await sleep(100)
  }
}

describe('the everyday loop: two tiny machines', () => {
  let fixture: MachineFixture
  let elsewhere: string
  let upJson: {result: {machines: Array<{name: string}>}; warnings: string[]}
  let upStderr: string
  const run = (args: string[]) => fixture.run(args)
  /** vm from a directory that is no project: only global-status ids name machines there. */
  const fromElsewhere = (args: string[]) => vm(args, {cwd: elsewhere, env: fixture.env})

  beforeAll(async () => {
    fixture = machineFixture('everyday', 'tiny')
    elsewhere = mkdtempSync(path.join(tmpdir(), 'vm-e2e-everyday-elsewhere-'))
    writeFileSync(
      path.join(fixture.project, 'Vmfile'),
      [
        'box: vmfile/tiny',
        'cpus: 1',
        'memory: 256',
        'synced_folders: false',
        'machines:',
        '  web_1: {forwarded_ports: [{guest: 80, host: 46480}]}',
        '  db: {hostname: db.internal}',
        '',
      ].join('\n'),
    )
    const up = await run(['up', '--json'])
    expect(up.code, up.stderr).toBe(0)
    upJson = JSON.parse(up.stdout)
    upStderr = up.stderr
  }, 240_000)

  afterAll(async () => {
    await fixture?.cleanup()
    if (elsewhere !== undefined) rmSync(elsewhere, {recursive: true, force: true})
  })

  it('up --json prints nothing but JSON, and the KVM warning (if any) once for both machines', () => {
    expect(upJson.result.machines.map((machine) => machine.name).sort()).toEqual(['db', 'web_1'])
    expect(upStderr).not.toContain('booting')
    expect(upJson.warnings.filter((text) => text.includes('KVM')).length).toBeLessThanOrEqual(1)
  })

  it('each machine has its host name (the machine name made one, or hostname:), resolvable in the guest; status shows it', async () => {
    const web = await run(['ssh', 'web_1', '-c', 'hostname; grep "^127.0.1.1" /etc/hosts; sudo -n ping -c 1 -W 2 "$(hostname)" | head -1'])
    expect(web.code, web.stderr).toBe(0)
    const [name, hosts, ping] = web.stdout.trim().split('\n')
    expect(name).toBe('web-1')
    expect(hosts).toBe('127.0.1.1\tweb-1')
    expect(ping).toMatch(/^PING web-1 \(127\.0\.1\.1\)/)
    const db = await run(['ssh', 'db', '-c', 'hostname; grep "^127.0.1.1" /etc/hosts'])
    expect(db.stdout.trim().split('\n')).toEqual(['db.internal', '127.0.1.1\tdb.internal db'])
    const status = JSON.parse((await run(['status', '--json'])).stdout).result.machines as Array<{name: string; hostname: string}>
    expect(Object.fromEntries(status.map((machine) => [machine.name, machine.hostname]))).toEqual({web_1: 'web-1', db: 'db.internal'})
  })

  it('global-status has a header row, and its ids (or prefixes) name machines from any directory', async () => {
    const human = await fromElsewhere(['global-status'])
    expect(human.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+STATE\s+HOST\s+SSH\s+DIRECTORY$/)
    const listed = JSON.parse((await fromElsewhere(['global-status', '--json'])).stdout).result.machines as Array<{
      id: string
      name: string
      projectDir: string
    }>
    const ids = Object.fromEntries(listed.filter((m) => m.projectDir === fixture.project).map((m) => [m.name, m.id]))
    expect(Object.keys(ids).sort()).toEqual(['db', 'web_1'])
    const status = await fromElsewhere(['status', ids.db!.slice(0, 7), '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout).result.machines.map((m: {name: string}) => m.name)).toEqual(['db'])
    const ssh = await fromElsewhere(['ssh', ids.db!, '-c', 'hostname'])
    expect(ssh.code, ssh.stderr).toBe(0)
    expect(ssh.stdout.trim()).toBe('db.internal')
    const unknown = await fromElsewhere(['status', 'nosuchmachine'])
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('no machine id starts with "nosuchmachine"')
  })

  it('console: attaches through a terminal, shows what the guest prints, Ctrl-] detaches and restores the terminal; --log', async () => {
    const marker = `hello-console-${process.pid}`
    // Printed while nobody is attached: only the log can have it.
    const before = await run(['ssh', 'web_1', '-c', `echo unattended-${process.pid} | sudo -n tee /dev/ttyS0 >/dev/null`])
    expect(before.code, before.stderr).toBe(0)
    const command = `${quote(process.execPath)} ${quote(path.join(root, 'bin/run.js'))} console web_1; stty -a`
    const session = await inTerminal(command, {cwd: fixture.project, env: fixture.env}, async (keys, shown) => {
      await until(shown, "Attached to web_1's serial console.")
      const wrote = await run(['ssh', 'web_1', '-c', `echo ${marker} | sudo -n tee /dev/ttyS0 >/dev/null`])
      expect(wrote.code, wrote.stderr).toBe(0)
      await until(shown, marker)
      keys('\u001D')
    })
    expect(session.code).toBe(0)
    expect(session.output).toContain("Attached to web_1's serial console. Detach with Ctrl-].")
    expect(session.output).toContain(marker)
    expect(session.output).not.toContain(`unattended-${process.pid}`)
    expect(session.output).toContain("Detached from web_1's console.")
    // stty -a after vm console: canonical mode and echo are back on.
    const stty = session.output.slice(session.output.indexOf('Detached'))
    expect(stty).toMatch(/(^|\s)icanon(\s|$)/m)
    expect(stty).toMatch(/(^|\s)echo(\s|$)/m)
    // The log still gets everything the console showed, and --log prints it without control characters.
    const log = await run(['console', 'web_1', '--log'])
    expect(log.code, log.stderr).toBe(0)
    expect(log.stdout).toContain(`unattended-${process.pid}`)
    expect(log.stdout).toContain(marker)
    expect(log.stdout).not.toContain('\u001B')
    const json = JSON.parse((await run(['console', 'web_1', '--log', '--json'])).stdout).result
    expect(json.log).toContain(marker)
  })

  it('halted (by id, from elsewhere): port lists the configured ports with the state, console is a clear error', async () => {
    const listed = JSON.parse((await fromElsewhere(['global-status', '--json'])).stdout).result.machines as Array<{
      id: string
      name: string
      projectDir: string
    }>
    const web = listed.find((m) => m.projectDir === fixture.project && m.name === 'web_1')!
    const halt = await fromElsewhere(['halt', web.id.slice(0, 6)])
    expect(halt.code, halt.stderr).toBe(0)
    const port = await run(['port', 'web_1'])
    expect(port.code, port.stderr).toBe(0)
    expect(port.stdout).toContain('poweroff')
    expect(port.stdout).toContain('80 (guest) => 127.0.0.1:46480 (host) tcp')
    const attach = await run(['console', 'web_1'])
    expect(attach.code).not.toBe(0)
    expect(attach.stderr).toContain('Machine web_1 is not running (state: poweroff)')
  })

  it('up again without --json: plain boot progress lines (not a TTY), no KVM warning a second time', async () => {
    const up = await run(['up', 'web_1'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stderr).toMatch(/^\[web_1\] booting \d+s/m)
    expect(up.stderr).not.toContain('\u001B')
    expect(up.stderr).not.toContain('KVM')
    expect(up.stdout).toMatch(/\[web_1\] running/)
  })
})
