import {UserError} from '../errors/errors.js'
import {FIELD_RULES, fieldProblem, quoteValue, type FieldRule} from './fields.js'

/** Providers whose boxes vm runs unchanged: both ship a qcow2 disk QEMU boots directly. */
export const SUPPORTED_PROVIDERS = ['qemu', 'libvirt'] as const
export type BoxProvider = (typeof SUPPORTED_PROVIDERS)[number]

export type DiskFormat = 'qcow2' | 'raw'

export interface BoxDisk {
  /** Relative to the box directory. */
  path: string
  name: string | undefined
  format: DiskFormat
}

/**
 * A box's metadata.json as vm reads it. The Vagrant fields (provider, format, virtual_size,
 * disks) come from the libvirt and QEMU providers; the others are vm's own and optional.
 */
export interface BoxMetadata {
  provider: BoxProvider
  format: DiskFormat
  /** GB, as in Vagrant's libvirt boxes. */
  virtualSize: number | undefined
  disks: BoxDisk[]
  kernel: string | undefined
  initrd: string | undefined
  cmdline: string | undefined
  firmware: string | undefined
  sshUser: string | undefined
  architecture: string | undefined
  name: string | undefined
  version: string | undefined
  /**
   * vm's own field `cloud_init`: the box is a cloud image with no user and no key of its own.
   * Its machines boot with a NoCloud seed that creates the login user with the machine's own
   * key; no insecure key is ever trusted. Bare disk images are stored this way.
   */
  cloudInit: boolean
}

/** Whether a path from a box's metadata stays inside the box: relative, no "..", no NUL. */
export function isSafeRelativePath(file: string): boolean {
  if (file === '' || file.includes('\0') || file.startsWith('/') || file.includes('\\')) return false
  const parts = file.split('/').filter((part) => part !== '' && part !== '.')
  return parts.length > 0 && !parts.includes('..')
}

function optionalString(data: Record<string, unknown>, key: string, problems: string[], label = key): string | undefined {
  const value = data[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') {
    problems.push(`"${label}" is ${quoteValue(value)}; it must be a string`)
    return undefined
  }
  return value
}

/** An optional string field that must match `rule` ("" counts as absent); `label` names it in messages. */
function checked(data: Record<string, unknown>, key: string, rule: FieldRule, problems: string[], label = key): string | undefined {
  const value = optionalString(data, key, problems, label)
  if (value === undefined || value === '') return undefined
  const problem = fieldProblem(label, value, rule)
  if (problem !== undefined) {
    problems.push(problem)
    return undefined
  }
  return value
}

function parseFormat(value: unknown, where: string, problems: string[]): DiskFormat {
  if (value === undefined || value === null) return 'qcow2'
  if (value === 'qcow2' || value === 'raw') return value
  problems.push(`"${where}" is ${quoteValue(value)}; vm runs qcow2 and raw disks`)
  return 'qcow2'
}

/** The largest virtual_size accepted (GB): 1 PiB. */
const MAX_VIRTUAL_SIZE = 1 << 20

/**
 * Reads metadata.json text. Every problem is collected into one UserError so the box author
 * sees them all. `where` names the box in messages.
 */
export function parseBoxMetadata(text: string, where: string): BoxMetadata {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new UserError(`The metadata.json of ${where} is not valid JSON: ${(error as Error).message}`, {code: 'BOX_INVALID'})
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UserError(`The metadata.json of ${where} is not a JSON object`, {code: 'BOX_INVALID'})
  }
  const record = data as Record<string, unknown>
  const problems: string[] = []
  const provider = record.provider
  if (!SUPPORTED_PROVIDERS.includes(provider as BoxProvider)) {
    problems.push(`"provider" is ${quoteValue(provider)}; vm runs boxes for the ${SUPPORTED_PROVIDERS.join(' and ')} providers`)
  }
  const format = parseFormat(record.format, 'format', problems)
  const size = record.virtual_size
  if (size !== undefined && (typeof size !== 'number' || !(size > 0) || size > MAX_VIRTUAL_SIZE))
    problems.push(`"virtual_size" is ${quoteValue(size)}; it must be a positive number of GB, at most ${MAX_VIRTUAL_SIZE}`)
  let disks: BoxDisk[] = [{path: 'box.img', name: undefined, format}]
  if (record.disks !== undefined) {
    if (!Array.isArray(record.disks) || record.disks.length === 0) {
      problems.push('"disks" must be a non-empty list of {path, name?, format?}')
    } else {
      disks = record.disks.map((disk: unknown, index) => {
        const entry = (typeof disk === 'object' && disk !== null ? disk : {}) as Record<string, unknown>
        const file = checked(entry, 'path', FIELD_RULES.file, problems, `disks[${index}].path`)
        if (entry.path === undefined || entry.path === null || entry.path === '') problems.push(`disks[${index}] has no "path"`)
        const name = checked(entry, 'name', FIELD_RULES.disk_name, problems, `disks[${index}].name`)
        return {path: file ?? `disk${index}`, name, format: parseFormat(entry.format ?? format, `disks[${index}].format`, problems)}
      })
    }
  }
  const result: BoxMetadata = {
    provider: provider as BoxProvider,
    format,
    virtualSize: typeof size === 'number' ? size : undefined,
    disks,
    kernel: checked(record, 'kernel', FIELD_RULES.file, problems),
    initrd: checked(record, 'initrd', FIELD_RULES.file, problems),
    cmdline: checked(record, 'cmdline', FIELD_RULES.cmdline, problems),
    firmware: checked(record, 'firmware', FIELD_RULES.firmware, problems),
    sshUser: checked(record, 'ssh_user', FIELD_RULES.ssh_user, problems),
    architecture: checked(record, 'architecture', FIELD_RULES.architecture, problems),
    name: checked(record, 'name', FIELD_RULES.name, problems),
    version: checked(record, 'version', FIELD_RULES.version, problems),
    cloudInit: record.cloud_init === true,
  }
  if (record.cloud_init !== undefined && record.cloud_init !== null && typeof record.cloud_init !== 'boolean')
    problems.push(`"cloud_init" is ${quoteValue(record.cloud_init)}; it must be true or false`)
  if (problems.length > 0) {
    throw new UserError(`The metadata.json of ${where} is not usable`, {
      code: 'BOX_INVALID',
      details: problems,
      hint: 'Boxes need {"provider": "libvirt" or "qemu", "format": "qcow2"} and the disks they name.',
    })
  }
  return result
}

/** Every file a box's metadata names (disks, kernel, initrd). */
export function referencedFiles(metadata: BoxMetadata): string[] {
  const files = metadata.disks.map((disk) => disk.path)
  if (metadata.kernel !== undefined) files.push(metadata.kernel)
  if (metadata.initrd !== undefined) files.push(metadata.initrd)
  return files
}
