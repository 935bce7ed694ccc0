import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {packageRoot} from '../../state/package-root.js'

/** A machine as its domain XML says it (templates/libvirt/domain.xml.hbs). */
export interface DomainSpec {
  /** 'kvm' when the host's KVM works, else 'qemu' (TCG). */
  type: 'kvm' | 'qemu'
  name: string
  uuid: string
  /** Shown by virsh list --title: which vm machine this is. */
  title: string
  memoryMiB: number
  cpus: number
  /** A firmware image to use instead of SeaBIOS (qboot for direct kernel boot). */
  loader?: string | undefined
  kernel?: {path: string; initrd?: string | undefined; cmdline?: string | undefined} | undefined
  disks: Array<{path: string; format: 'qcow2' | 'raw'; target: string}>
  /** A cloud-init seed attached read-only. */
  seed?: string | undefined
  /** NICs in order: on a libvirt network, or on a host bridge. */
  nics: Array<{mac: string; network?: string | undefined; bridge?: string | undefined}>
  shares: Array<{tag: string; path: string; readOnly: boolean}>
  serialLog: string
  vnc: boolean
}

/** A libvirt network vm defines (templates/libvirt/network.xml.hbs). */
export interface NetworkSpec {
  name: string
  bridge: string
  /** NAT with DHCP; absent: an isolated network (no <forward>, no host address). */
  nat?: {address: string; netmask: string; dhcpStart: string; dhcpEnd: string} | undefined
}

type Render = (data: unknown) => string
const compiled = new Map<string, Promise<Render>>()

/** Compiles a template of templates/libvirt once per process; every {{value}} is XML-escaped. */
function template(name: string): Promise<Render> {
  let found = compiled.get(name)
  if (found === undefined) {
    found = (async () => {
      // Loaded on demand: handlebars is large and only the libvirt engine and init need it.
      const {default: Handlebars} = await import('handlebars')
      const source = await readFile(path.join(packageRoot(), 'templates', 'libvirt', name), 'utf8')
      const render = Handlebars.compile(source, {strict: false, noEscape: false})
      return (data: unknown) => render(data)
    })()
    compiled.set(name, found)
  }
  return found
}

/** Characters XML 1.0 cannot hold even escaped: a value with one is refused rather than mangled. */
// eslint-disable-next-line no-control-regex -- these are exactly the characters XML 1.0 refuses
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/

function checkXmlText(value: unknown, where: string): void {
  if (typeof value === 'string') {
    if (NOT_XML.test(value))
      throw new Error(`${where} holds a control character, which libvirt's XML cannot carry: ${JSON.stringify(value)}`)
  } else if (Array.isArray(value)) value.forEach((item, index) => checkXmlText(item, `${where}[${index}]`))
  else if (typeof value === 'object' && value !== null)
    for (const [key, item] of Object.entries(value)) checkXmlText(item, where === '' ? key : `${where}.${key}`)
}

export async function renderDomainXml(spec: DomainSpec): Promise<string> {
  checkXmlText(spec, '')
  return (await template('domain.xml.hbs'))(spec)
}

export async function renderNetworkXml(spec: NetworkSpec): Promise<string> {
  checkXmlText(spec, '')
  return (await template('network.xml.hbs'))(spec)
}
