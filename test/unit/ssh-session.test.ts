import {describe, expect, it} from 'vitest'

import {splitAtDashes} from '../../src/commands/ssh.js'
import {matchingGuestDir, sessionCommand} from '../../src/ssh/session.js'

describe('vm ssh sessions', () => {
  it('everything after the first "--" goes to ssh, even what looks like a machine name or vm flag', () => {
    expect(splitAtDashes(['--', '-L', '9001:localhost:80', '-N'])).toEqual({own: [], ssh: ['-L', '9001:localhost:80', '-N']})
    expect(splitAtDashes(['web', '-c', 'x', '--', 'db', '--', '-c'])).toEqual({own: ['web', '-c', 'x'], ssh: ['db', '--', '-c']})
    expect(splitAtDashes(['web', 'db'])).toEqual({own: ['web', 'db'], ssh: []})
  })

  it('the guest directory matching the host one: the innermost synced folder, the rest of the path kept', () => {
    const folders = [
      {host: '/home/me/project', guest: '/vm'},
      {host: '/home/me/project/data', guest: '/srv/data'},
    ]
    expect(matchingGuestDir(folders, '/home/me/project')).toBe('/vm')
    expect(matchingGuestDir(folders, '/home/me/project/src/lib')).toBe('/vm/src/lib')
    expect(matchingGuestDir(folders, '/home/me/project/data/x')).toBe('/srv/data/x')
    expect(matchingGuestDir(folders, '/home/me/project-other')).toBeUndefined()
    expect(matchingGuestDir(folders, '/home/me')).toBeUndefined()
    expect(matchingGuestDir([], '/home/me/project')).toBeUndefined()
  })

  it('what the guest runs: the command, in --workdir (failing when it cannot cd), or a login shell in the landing directory', () => {
    expect(sessionCommand({})).toEqual({command: undefined, needsTty: false})
    expect(sessionCommand({command: 'uname -a'})).toEqual({command: 'uname -a', needsTty: false})
    expect(sessionCommand({command: 'ls', workdir: "/it's here"})).toEqual({
      command: "cd -- '/it'\\''s here' || exit 1\nls",
      needsTty: false,
    })
    expect(sessionCommand({workdir: '/tmp'})).toEqual({command: `cd -- '/tmp' || exit 1; exec "\${SHELL:-/bin/sh}" -l`, needsTty: true})
    expect(sessionCommand({landing: '/vm/src'})).toEqual({
      command: `cd -- '/vm/src' 2>/dev/null; exec "\${SHELL:-/bin/sh}" -l`,
      needsTty: true,
    })
    // -c runs in the home directory as before, even inside a synced folder.
    expect(sessionCommand({command: 'pwd', landing: '/vm/src'})).toEqual({command: 'pwd', needsTty: false})
  })
})
