import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import GlobalStatus from '../../src/commands/global-status.js'
import Init from '../../src/commands/init.js'
import SshConfig from '../../src/commands/ssh-config.js'
import Status from '../../src/commands/status.js'
import Validate from '../../src/commands/validate.js'
import {UserError} from '../../src/errors/errors.js'
import {ExitCode} from '../../src/errors/exit-codes.js'
import {loadProject} from '../../src/vmfile/index.js'
import {runCommand, tempProject} from '../helpers/run-command.js'

describe('vm init and vm validate', () => {
  it('init writes a Vmfile that validate accepts', async () => {
    const dir = tempProject()
    const init = await runCommand(Init, ['--cwd', dir])
    expect(init.exitCode).toBe(0)
    expect(init.stdout).toContain('Wrote')
    const text = readFileSync(path.join(dir, 'Vmfile'), 'utf8')
    expect(text).toContain('box: vmfile/debian-12')
    const validate = await runCommand(Validate, ['--cwd', dir])
    expect(validate.exitCode).toBe(0)
    expect(validate.stdout).toContain('Vmfile is valid')
  })

  it('init refuses to overwrite without --force', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: mine\n')
    const again = await runCommand(Init, ['--cwd', dir])
    expect(again.exitCode).toBe(ExitCode.failure)
    expect(again.stderr).toContain('already exists')
    expect(again.stderr).toContain('--force')
    expect(readFileSync(path.join(dir, 'Vmfile'), 'utf8')).toBe('box: mine\n')
    const forced = await runCommand(Init, ['--cwd', dir, '--force', 'vmfile/tiny'])
    expect(forced.exitCode).toBe(0)
    expect(readFileSync(path.join(dir, 'Vmfile'), 'utf8')).toContain('box: vmfile/tiny')
  })

  it('validate finds the Vmfile in a parent directory, like git', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\n')
    const sub = path.join(dir, 'src', 'deep')
    await import('node:fs').then((fs) => fs.mkdirSync(sub, {recursive: true}))
    const result = await runCommand(Validate, ['--cwd', sub, '--json'])
    expect(JSON.parse(result.stdout).result.file).toBe(path.join(dir, 'Vmfile'))
  })

  it('a Vmfile with three mistakes gives three located messages and exit 1', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\ncpus: 0\nmemory: lots\naccel: fast\n')
    const result = await runCommand(Validate, ['--cwd', dir])
    expect(result.exitCode).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('Vmfile:2:7 cpus: must be at least 1, not 0')
    expect(result.stderr).toContain('Vmfile:3:9 memory: must be a size')
    expect(result.stderr).toContain('Vmfile:4:8 accel: must be one of auto, kvm, tcg, not "fast"')
  })

  it('no Vmfile is an error that says what to do', async () => {
    const dir = tempProject()
    const result = await runCommand(Validate, ['--cwd', dir])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toMatch(/No Vmfile in .* or any parent directory/)
    expect(result.stderr).toContain('Next: Run "vm init"')
  })

  it('an unknown flag is a usage error, exit 2', async () => {
    const result = await runCommand(Validate, ['--bogus'])
    expect(result.exitCode).toBe(ExitCode.usage)
    expect(result.stderr).toContain('Unknown flag --bogus for "vm validate"')
  })
})

describe('--json output', () => {
  it('validate: a success envelope and nothing else on stdout', async () => {
    const dir = tempProject()
    // box_url: the box counts as found, built boxes or not (no warning about the box).
    writeFileSync(
      path.join(dir, 'Vmfile'),
      'box: vmfile/tiny\nbox_url: https://boxes.invalid/tiny.json\nmachines:\n  web: {primary: true}\n  db: {}\n',
    )
    const result = await runCommand(Validate, ['--cwd', dir, '--json'])
    expect(JSON.parse(result.stdout)).toEqual({
      status: 0,
      result: {valid: true, file: path.join(dir, 'Vmfile'), machines: ['web', 'db'], primary: 'web'},
      warnings: [],
    })
  })

  it('validate: an error envelope with every problem, exit 1', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\ncpus: 0\n')
    const result = await runCommand(Validate, ['--cwd', dir, '--json'])
    expect(result.exitCode).toBe(1)
    const json = JSON.parse(result.stdout)
    expect(json).toMatchObject({
      status: 1,
      error: {
        code: 'VMFILE_INVALID',
        kind: 'user',
        message: 'Vmfile has 1 problem',
        details: ['Vmfile:2:7 cpus: must be at least 1, not 0'],
      },
    })
    expect(json.error.data.problems).toEqual([{line: 2, col: 7, path: 'cpus', message: 'must be at least 1, not 0'}])
  })

  it('init --output - --json returns the content in the result', async () => {
    const dir = tempProject()
    const result = await runCommand(Init, ['--cwd', dir, '--output', '-', '--json', '--minimal', 'vmfile/tiny'])
    const json = JSON.parse(result.stdout)
    expect(json.status).toBe(0)
    expect(json.result).toMatchObject({path: '-', box: 'vmfile/tiny', minimal: true})
    expect(json.result.content).toContain('box: vmfile/tiny')
  })

  it('init: a usage error is JSON too', async () => {
    const result = await runCommand(Init, ['--json', '--nope'])
    expect(result.exitCode).toBe(2)
    expect(JSON.parse(result.stdout)).toMatchObject({status: 2, error: {kind: 'usage'}})
  })
})

describe('hostile values in messages', () => {
  it('a Vmfile value with ESC and BEL prints escaped in the error, never raw', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\nmemory: "lots\\e]0;owned\\a\\e[2J"\n')
    const result = await runCommand(Validate, ['--cwd', dir])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toContain('not "lots\\x1b]0;owned\\x07\\x1b[2J"')
    expect(result.stderr).not.toContain('\u001B')
    expect(result.stderr).not.toContain('\u0007')
  })

  it('a machine name is escaped in human output too', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\nmachines:\n  web: {}\n')
    const result = await runCommand(Status, ['--cwd', dir, 'web\u001B[2J'])
    expect(result.stderr + result.stdout).not.toContain('\u001B')
  })
})

describe('--json mode prints nothing else', () => {
  it('validate --json: the JSON on stdout and nothing on stderr', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\n')
    const result = await runCommand(Validate, ['--cwd', dir, '--json'])
    expect(JSON.parse(result.stdout).status).toBe(0)
    expect(result.stderr).toBe('')
  })

  it('status --json: no human table on stderr', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\nmachines:\n  web: {}\n  db: {}\n')
    const result = await runCommand(Status, ['--cwd', dir, '--json'])
    expect(JSON.parse(result.stdout).result.machines.map((m: {name: string}) => m.name)).toEqual(['web', 'db'])
    expect(result.stderr).toBe('')
  })

  it('global-status --json: a corrupt machine index is a warning in the JSON, not a line on stderr', async () => {
    const dir = tempProject()
    mkdirSync(path.join(process.env.VM_HOME!, 'data'), {recursive: true})
    writeFileSync(path.join(process.env.VM_HOME!, 'data', 'machines.json'), '{"machines": [')
    const result = await runCommand(GlobalStatus, ['--cwd', dir, '--json'])
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout).warnings.join('\n')).toMatch(/machine index .*machines\.json.* unreadable/)
  })

  it('an error names its class (UserError), not what a minifier made of it', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\ncpus: 0\n')
    const result = await runCommand(Validate, ['--cwd', dir, '--json'])
    expect(JSON.parse(result.stdout).error.name).toBe('UserError')
    expect(result.stderr).toBe('')
  })
})

describe('vm validate checks what the host can give', () => {
  it('warns when a machine asks for more memory than the host has, and still succeeds', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\nbox_url: https://boxes.invalid/tiny.json\nmemory: 1024T\n')
    const result = await runCommand(Validate, ['--cwd', dir, '--json'])
    expect(result.exitCode).toBe(0)
    const json = JSON.parse(result.stdout)
    expect(json.warnings).toEqual([expect.stringMatching(/^machine default asks for 1024T of memory, more than this host has \(/)])
    expect(result.stderr).toBe('')
    const human = await runCommand(Validate, ['--cwd', dir])
    expect(human.stderr).toMatch(/^Warning: machine default asks for 1024T of memory/)
  })

  it('checks synced folders relative to the Vmfile, not to where vm runs', async () => {
    const dir = tempProject()
    mkdirSync(path.join(dir, 'shared'))
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\nsynced_folders: [{host: shared, guest: /s}, {host: gone, guest: /g}]\n')
    const result = await runCommand(Validate, ['--cwd', tmpdir(), path.join(dir, 'Vmfile')])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toContain('synced_folders[1].host: the folder "gone" does not exist')
    expect(result.stderr).not.toContain('"shared"')
  })
})

describe('the commands that start machines check the same things', () => {
  it('loadProject (vm up, reload, provision ...) refuses what vm validate refuses', () => {
    const dir = tempProject()
    writeFileSync(
      path.join(dir, 'Vmfile'),
      'box: vmfile/tiny\nmemory: 0.4\nsynced_folders: [{host: gone, guest: /g}]\nforwarded_ports: [{guest: 1, host: 9000}, {guest: 2, host: 9000}]\n',
    )
    let error: unknown
    try {
      loadProject(dir)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(UserError)
    expect((error as UserError).details).toEqual([
      'Vmfile:2:9 memory: must be at least 32M, not 0.4',
      'Vmfile:3:25 synced_folders[0].host: the folder "gone" does not exist (relative paths start at the Vmfile\'s directory)',
      'Vmfile:4:43 forwarded_ports[1]: host port 9000/tcp on 127.0.0.1 is taken twice: forwarded_ports[0] forwards it already; use another host port, or auto_correct: true',
    ])
  })
})

describe('vm ssh-config', () => {
  it('refuses a --host alias that would add a directive, before looking at any machine', async () => {
    const dir = tempProject()
    writeFileSync(path.join(dir, 'Vmfile'), 'box: vmfile/tiny\n')
    const result = await runCommand(SshConfig, ['--cwd', dir, '--host', 'web\n  ProxyCommand touch /tmp/x'])
    expect(result.exitCode).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('Cannot write the SSH Host alias "web\\n  ProxyCommand touch /tmp/x"')
  })
})
