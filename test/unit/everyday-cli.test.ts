import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import GlobalStatus from '../../src/commands/global-status.js'
import Port from '../../src/commands/port.js'
import Status from '../../src/commands/status.js'
import {runCommand, tempProject} from '../helpers/run-command.js'

describe('vm global-status', () => {
  it('prints a header row above the machines, and ids name machines from another directory', async () => {
    const project = tempProject()
    writeFileSync(path.join(project, 'Vmfile'), 'box: vmfile/tiny\nmachines: {web: {}}\n')
    // A record that cannot be read: the machine is listed as unknown, never hidden.
    mkdirSync(path.join(project, '.vm/machines/web'), {recursive: true})
    writeFileSync(path.join(project, '.vm/machines/web/machine.json'), '{')
    mkdirSync(path.join(process.env.VM_HOME!, 'data'), {recursive: true})
    const id = '0123456789abcdef'
    writeFileSync(
      path.join(process.env.VM_HOME!, 'data', 'machines.json'),
      JSON.stringify({machines: [{id, name: 'web', projectDir: project}]}),
    )
    // Another directory, with no Vmfile (tempProject would move VM_HOME).
    const other = mkdtempSync(path.join(tmpdir(), 'vm-elsewhere-'))
    const listing = await runCommand(GlobalStatus, ['--cwd', other])
    expect(listing.exitCode).toBe(0)
    const lines = listing.stdout.split('\n')
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATE\s+HOST\s+SSH\s+DIRECTORY$/)
    expect(lines[1]).toMatch(new RegExp(`^0123456\\s+web\\s+unknown\\s+-\\s+-\\s+${project}$`))

    const status = await runCommand(Status, ['--cwd', other, '--json', '0123456'])
    expect(status.exitCode).toBe(0)
    const machines = JSON.parse(status.stdout).result.machines as Array<{name: string; projectDir: string}>
    expect(machines.map((machine) => [machine.name, machine.projectDir])).toEqual([['web', project]])
  })
})

describe('vm port on a machine that does not run', () => {
  it('lists the configured ports with the state instead of failing', async () => {
    const project = tempProject()
    writeFileSync(
      path.join(project, 'Vmfile'),
      'box: vmfile/tiny\nforwarded_ports: [{guest: 80, host: 18080}, {guest: 53, host: 10053, protocol: udp}]\n',
    )
    const human = await runCommand(Port, ['--cwd', project])
    expect(human.exitCode, human.stderr).toBe(0)
    expect(human.stdout).toContain('not_created')
    expect(human.stdout).toMatch(/80 \(guest\) => .*:18080 \(host\) tcp/)
    expect(human.stdout).toMatch(/53 \(guest\) => .*:10053 \(host\) udp/)
    const json = JSON.parse((await runCommand(Port, ['--cwd', project, '--json'])).stdout).result
    expect(json.state).toBe('not_created')
    expect(json.ports.map((port: {guest: number; host: number}) => [port.guest, port.host])).toEqual([
      [80, 18080],
      [53, 10053],
    ])
  })
})
