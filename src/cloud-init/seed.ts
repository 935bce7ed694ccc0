import {createHash} from 'node:crypto'

import {UserError} from '../errors/errors.js'
import {type ImageFile, writeSeedImage} from './iso9660.js'

/**
 * The content of a NoCloud seed: `meta-data`, `user-data` and optionally `network-config`, as
 * pure functions of the machine. Nothing here parses YAML (the project parses YAML only in
 * src/vmfile/): vm writes its own documents as JSON, which is valid YAML, and passes the user's
 * documents through untouched.
 */

/**
 * The instance-id of a machine: `vm-<machine id>-<12 hex of sha256(createdAt)>`.
 *
 * cloud-init runs its once-per-instance modules (users, ssh keys, write_files, runcmd, growpart's
 * first resize ...) again whenever the instance-id changes, so it must stay the same across the
 * boots of one machine and change when the machine is destroyed and created again. The machine
 * id alone does not (it is a hash of the project directory and the machine's name, so a
 * recreated machine gets the same one); the record's createdAt is set once, when the machine is
 * made, and kept by halt and up, so the pair names one life of the machine.
 */
export function instanceIdFor(machine: {id: string; createdAt: string}): string {
  if (!/^[\w-]+$/.test(machine.id)) throw new UserError(`Invalid machine id "${machine.id}" for a cloud-init instance-id.`)
  if (machine.createdAt === '') throw new UserError('A cloud-init instance-id needs the machine creation time; the record has none.')
  const life = createHash('sha256').update(machine.createdAt).digest('hex').slice(0, 12)
  return `vm-${machine.id}-${life}`
}

/** A hostname cloud-init can set: RFC 1123 labels (letters, digits, hyphens), dot-separated. */
const HOSTNAME = /^(?=.{1,253}$)[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?(?:\.[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?)*$/i

/** `meta-data`: the instance-id and the hostname, as JSON (a YAML document cloud-init reads). */
export function metaData(options: {instanceId: string; hostname: string}): string {
  const {instanceId, hostname} = options
  if (!/^[\w.-]{1,128}$/.test(instanceId)) throw new UserError(`Invalid cloud-init instance-id "${instanceId}".`)
  if (!HOSTNAME.test(hostname)) {
    throw new UserError(`Invalid hostname "${hostname}" for cloud-init: use letters, digits and "-" in dot-separated labels.`, {
      hint: 'Set a hostname of that form in the Vmfile (`hostname:`).',
    })
  }
  return `${JSON.stringify({'instance-id': instanceId, 'local-hostname': hostname}, undefined, 2)}\n`
}

/** A user name `useradd` accepts on every distribution (the portable subset). */
const USER_NAME = /^[a-z_][a-z\d_-]{0,31}$/
/** One OpenSSH public key line: type, base64 body, optional comment; no line breaks. */
const PUBLIC_KEY = /^(?:ssh-|ecdsa-sha2-|sk-)[\w@.-]+ [A-Za-z\d+/]+=* ?[^\r\n]*$/

/**
 * vm's own cloud-config: the SSH user (passwordless sudo, bash, locked password, the machine's
 * public key) and no password logins over SSH. JSON after the `#cloud-config` line.
 */
export function vmCloudConfig(options: {user: string; publicKey: string}): string {
  const {user, publicKey} = options
  if (!USER_NAME.test(user)) {
    throw new UserError(`Invalid SSH user name "${user}" for cloud-init: use lower-case letters, digits, "_" and "-" (at most 32).`)
  }
  const key = publicKey.trim()
  if (!PUBLIC_KEY.test(key)) throw new UserError('The machine public key is not a single OpenSSH public key line.')
  const config = {
    users: [
      {
        name: user,
        sudo: 'ALL=(ALL) NOPASSWD:ALL',
        shell: '/bin/bash',
        lock_passwd: true,
        ssh_authorized_keys: [key],
      },
    ],
    ssh_pwauth: false,
  }
  return `#cloud-config\n${JSON.stringify(config, undefined, 2)}\n`
}

/**
 * How vm's part merges into the user's, given to cloud-init as each part's `Merge-Type` header
 * (cloud-init's merging reference: `list(append)` appends list items instead of replacing
 * the list; `dict(no_replace,recurse_list)` keeps the values already merged and merges lists
 * found under the same key with the list merger).
 *
 * The user's part comes first and vm's second, so for a key both set:
 * - lists (`users`, `runcmd`, `write_files`, `ssh_authorized_keys`, `packages` ...) hold the
 *   user's items, then vm's: vm's user and key are always there, the user's are kept;
 * - mappings are merged key by key by the same rules;
 * - a single value (`ssh_pwauth`, `hostname` ...) is the user's: the user decides.
 * The same header is on both parts: cloud-init versions that apply a part's merge rules to that
 * part, and those that apply them to the part that follows, then behave alike. A `merge_how`
 * inside the user's own document is honoured by cloud-init as usual.
 */
export const MERGE_TYPE = 'list(append)+dict(no_replace,recurse_list)+str()'

/** Content types of cloud-init's user-data formats, by the first line that announces each. */
const FORMATS: ReadonlyArray<[prefix: string, contentType: string]> = [
  ['#cloud-config-archive', 'text/cloud-config-archive'],
  ['#cloud-config-jsonp', 'text/cloud-config-jsonp'],
  ['#cloud-config', 'text/cloud-config'],
  ['#include-once', 'text/x-include-once-url'],
  ['#include', 'text/x-include-url'],
  ['#cloud-boothook', 'text/cloud-boothook'],
  ['#part-handler', 'text/part-handler'],
  ['## template: jinja', 'text/jinja2'],
  ['#!', 'text/x-shellscript'],
]

/**
 * The MIME content type of a user-data document, from its first line as cloud-init decides it;
 * 'message' for a document that is itself a MIME message (it becomes a part as it is).
 */
export function userDataFormat(text: string): string {
  if (/^(?:content-type|mime-version):/i.test(text)) return 'message'
  for (const [prefix, contentType] of FORMATS) if (text.startsWith(prefix)) return contentType
  const first = text.split('\n', 1)[0]!.slice(0, 60)
  throw new UserError(`cloud-init would ignore this user-data: its first line "${first}" announces no format cloud-init knows.`, {
    hint: 'Begin it with "#cloud-config" (a cloud-config document), "#!" (a script), or another cloud-init format header.',
  })
}

/** A boundary that appears in none of the parts: the first free `==vm-part-N==`. */
function boundaryFor(parts: readonly string[]): string {
  for (let counter = 0; ; counter++) {
    const boundary = `==vm-part-${counter}==`
    if (!parts.some((part) => part.includes(boundary))) return boundary
  }
}

interface Part {
  contentType: string
  filename: string
  content: string
}

/** A part's headers and body. ASCII text goes as is; anything else in base64 (see below). */
function renderPart(part: Part): string {
  if (part.contentType === 'message') return part.content
  // cloud-init reads the message from a str, and Python's email module then turns non-ASCII
  // 7bit/8bit bodies into bytes with raw-unicode-escape: base64 keeps UTF-8 exact.
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\u0000-\u007f]*$/.test(part.content)
  const body = ascii
    ? part.content
    : (
        Buffer.from(part.content, 'utf8')
          .toString('base64')
          .match(/.{1,76}/g) ?? []
      ).join('\n')
  return [
    `Content-Type: ${part.contentType}; charset="utf-8"`,
    'MIME-Version: 1.0',
    `Content-Transfer-Encoding: ${ascii ? '7bit' : 'base64'}`,
    `Content-Disposition: attachment; filename="${part.filename}"`,
    ...(part.contentType === 'text/cloud-config' ? [`Merge-Type: ${MERGE_TYPE}`] : []),
    '',
    body,
  ].join('\n')
}

/**
 * `user-data`: vm's cloud-config alone, or, when the user brings user-data of their own
 * (`extra`: any cloud-init format; blank counts as none), a MIME multipart/mixed message holding the user's part,
 * then vm's, merged as MERGE_TYPE says. The user's document is not parsed, only identified
 * by its first line.
 */
export function userData(options: {user: string; publicKey: string; extra?: string}): string {
  const vm = vmCloudConfig(options)
  const extra = options.extra?.replace(/^\uFEFF/, '')
  // Blank user-data is no user-data (an empty Vmfile value or file).
  if (extra === undefined || extra.trim() === '') return vm
  const parts: Part[] = [
    {contentType: userDataFormat(extra), filename: 'user-data', content: extra},
    {contentType: 'text/cloud-config', filename: 'vm.cfg', content: vm},
  ]
  const rendered = parts.map((part) => renderPart(part))
  const boundary = boundaryFor(rendered)
  // Each part's body ends where the line break before the next delimiter starts (RFC 2046 5.1.1),
  // so a body reads back exactly as given.
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    'MIME-Version: 1.0',
    '',
    ...rendered.flatMap((part) => [`--${boundary}`, part]),
    `--${boundary}--`,
    '',
  ].join('\n')
}

/**
 * `network-config`, passed through as the user wrote it (cloud-init's network config version 1
 * or 2 YAML, read by cloud-init itself). Undefined or blank: no file, cloud-init's default (DHCP
 * on the first NIC).
 */
export function networkConfig(text: string | undefined): string | undefined {
  if (text === undefined || text.trim() === '') return undefined
  return text.endsWith('\n') ? text : `${text}\n`
}

export interface SeedOptions {
  /** From instanceIdFor(): stable for one machine, new when it is recreated. */
  instanceId: string
  hostname: string
  /** The SSH user vm logs in as. */
  user: string
  /** The machine's own public key (one OpenSSH line). */
  publicKey: string
  /** The user's own user-data, any cloud-init format (Vmfile `cloud_init.user_data`). */
  userData?: string
  /** Vmfile `cloud_init.network_config`, passed through. */
  networkConfig?: string
}

/** The files of a NoCloud seed, in the order they are written. */
export function seedFiles(options: SeedOptions): ImageFile[] {
  const files: ImageFile[] = [
    {name: 'meta-data', content: metaData({instanceId: options.instanceId, hostname: options.hostname})},
    {name: 'user-data', content: userData({user: options.user, publicKey: options.publicKey, extra: options.userData})},
  ]
  const network = networkConfig(options.networkConfig)
  if (network !== undefined) files.push({name: 'network-config', content: network})
  return files
}

/** Writes the NoCloud seed image (label `cidata`, mode 0600, atomically) for a machine. */
export async function writeNoCloudSeed(file: string, options: SeedOptions): Promise<void> {
  await writeSeedImage(file, seedFiles(options), 'cidata')
}
