import {describe, expect, it} from 'vitest'

import {shellQuote} from '../../src/provision/shell.js'
import {sshCommandLine} from '../../src/ssh/exec.js'
import {rsyncArgs} from '../../src/sync/folders.js'
import type {SyncedFolder} from '../../src/vmfile/types.js'
import {sampleTarget} from '../helpers/ssh-target.js'

const folder: SyncedFolder = {host: '/p/app', guest: '/srv/app', type: 'rsync', readOnly: false, exclude: ['*.log']}

describe('rsync of a synced folder', () => {
  it("runs the machine's own ssh command line, each word quoted as rsync splits -e", () => {
    const args = rsyncArgs(folder, sampleTarget)
    expect(args[args.indexOf('-e') + 1]).toBe(sshCommandLine(sampleTarget).map(shellQuote).join(' '))
    expect(args.slice(-2)).toEqual(['/p/app/', '127.0.0.1:/srv/app/'])
    expect(args).toEqual(expect.arrayContaining(['--exclude', '.vm/', '--exclude', '*.log']))
  })

  it('goes through the jump host when the machine has one', () => {
    const target = {...sampleTarget, host: '192.168.122.10', jump: {host: 'gw.example.org', port: 2222, user: 'ops'}}
    const args = rsyncArgs(folder, target)
    expect(args[args.indexOf('-e') + 1]).toContain(" '-o' 'ProxyJump=ops@gw.example.org:2222' ")
    expect(args.at(-1)).toBe('192.168.122.10:/srv/app/')
  })

  it('brackets an IPv6 guest address, as rsync reads [address]:path', () => {
    expect(rsyncArgs(folder, {...sampleTarget, host: 'fd00::10'}).at(-1)).toBe('[fd00::10]:/srv/app/')
  })
})
