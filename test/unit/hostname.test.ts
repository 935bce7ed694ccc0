import {describe, expect, it} from 'vitest'

import {hostnameFromMachineName, hostnameScript, machineHostname} from '../../src/machine/hostname.js'

const RFC1123 = /^(?=.{1,253}$)[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?(?:\.[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?)*$/

describe('a machine name made a host name', () => {
  it.each([
    ['web', 'web'],
    ['Web_1', 'web-1'],
    ['db.internal', 'db.internal'],
    ['_build_', 'build'],
    ['my app!', 'my-app'],
    ['a..b.', 'a.b'],
    ['ünïcode', 'n-code'],
    ['___', 'vm'],
    ['', 'vm'],
  ])('%j -> %j', (name, hostname) => {
    expect(hostnameFromMachineName(name)).toBe(hostname)
  })

  it('keeps every label at most 63 characters and the name at most 253, always valid', () => {
    const long = `${'x'.repeat(70)}-.${'y'.repeat(62)}_-z`
    const result = hostnameFromMachineName(long)
    expect(result.split('.').map((label) => label.length)).toEqual([63, 62])
    expect(result).toMatch(RFC1123)
    const many = Array.from({length: 10}, () => 'l'.repeat(60)).join('.')
    expect(hostnameFromMachineName(many).length).toBeLessThanOrEqual(253)
    expect(hostnameFromMachineName(many)).toMatch(RFC1123)
    for (const name of ['-a-', 'A.B-', 'x'.repeat(300), 'a/b\\c', 'é.à']) expect(hostnameFromMachineName(name)).toMatch(RFC1123)
  })

  it('the Vmfile hostname wins over the name', () => {
    expect(machineHostname({name: 'web_1', hostname: 'api.example'})).toBe('api.example')
    expect(machineHostname({name: 'web_1', hostname: undefined})).toBe('web-1')
  })

  it('the guest script writes /etc/hosts before the name changes, and refuses what is not a host name', () => {
    const script = hostnameScript('web.example')
    expect(script.indexOf('> /etc/hosts')).toBeLessThan(script.indexOf("hostname 'web.example'"))
    expect(script).toContain("'web.example web'")
    expect(() => hostnameScript("x'; reboot; '")).toThrow(/not a host name/)
  })
})
