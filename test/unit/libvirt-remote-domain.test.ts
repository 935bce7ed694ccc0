import {describe, expect, it} from 'vitest'

import {domainUuid} from '../../src/driver/libvirt/driver.js'
import {renderDomainXml, type DomainSpec} from '../../src/driver/libvirt/xml.js'

/** A domain for a remote libvirt host: the driver gives it no serial log (the host cannot write this host's files). */
const remote: DomainSpec = {
  type: 'qemu',
  name: 'vm-a-0123456789abcdef',
  uuid: domainUuid('0123456789abcdef'),
  title: 'vm machine a (/work/app)',
  memoryMiB: 256,
  cpus: 1,
  disks: [{path: '/var/lib/libvirt/images/vm-0123456789abcdef-disk0.qcow2', format: 'qcow2', target: 'vda'}],
  nics: [{mac: '52:54:00:12:34:57', network: 'vmfile'}],
  shares: [],
  serialLog: '',
  vnc: false,
}

describe('domain XML for a remote libvirt host', () => {
  it('has a serial pty without a <log> element (libvirt refuses to start a domain whose log file is "")', async () => {
    const xml = await renderDomainXml(remote)
    expect(xml).toMatch(/<serial type='pty'>/)
    expect(xml).not.toMatch(/<log /)
    expect(await renderDomainXml({...remote, serialLog: '/work/app/.vm/machines/a/serial.log'})).toContain(
      "<log file='/work/app/.vm/machines/a/serial.log' append='off'/>",
    )
  })
})
