import {UserError} from '../cli/errors.js'

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
}

/** Whether a path from a box's metadata stays inside the box: relative, no "..", no NUL. */
export function isSafeRelativePath(file: string): boolean {
  if (file === '' || file.includes('\0') || file.startsWith('/') || file.includes('\\')) return false
  const parts = file.split('/').filter((part) => part !== '' && part !== '.')
  return parts.length > 0 && !parts.includes('..')
}

function optionalString(data: Record<string, unknown>, key: string, problems: string[]): string | undefined {
  const value = data[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') {
    problems.push(`"${key}" must be a string`)
    return undefined
  }
  return value
}

function boxFile(data: Record<string, unknown>, key: string, problems: string[]): string | undefined {
  const value = optionalString(data, key, problems)
  if (value !== undefined && !isSafeRelativePath(value)) problems.push(`"${key}" (${value}) must be a relative path inside the box`)
  return value === '' ? undefined : value
}

function parseFormat(value: unknown, where: string, problems: string[]): DiskFormat {
  if (value === undefined || value === null) return 'qcow2'
  if (value === 'qcow2' || value === 'raw') return value
  problems.push(`${where} is ${JSON.stringify(value)}; vm runs qcow2 and raw disks`)
  return 'qcow2'
}

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
    problems.push(`provider is ${JSON.stringify(provider)}; vm runs boxes for the ${SUPPORTED_PROVIDERS.join(' and ')} providers`)
  }
  const format = parseFormat(record.format, 'format', problems)
  const size = record.virtual_size
  if (size !== undefined && (typeof size !== 'number' || !(size > 0))) problems.push('"virtual_size" must be a positive number (GB)')
  let disks: BoxDisk[] = [{path: 'box.img', name: undefined, format}]
  if (record.disks !== undefined) {
    if (!Array.isArray(record.disks) || record.disks.length === 0) {
      problems.push('"disks" must be a non-empty list of {path, name?}')
    } else {
      disks = record.disks.map((disk: unknown, index) => {
        const entry = (typeof disk === 'object' && disk !== null ? disk : {}) as Record<string, unknown>
        const file = boxFile(entry, 'path', problems)
        if (file === undefined) problems.push(`disks[${index}] has no "path"`)
        const name = optionalString(entry, 'name', problems)
        return {path: file ?? `disk${index}`, name, format: parseFormat(entry.format ?? format, `disks[${index}].format`, problems)}
      })
    }
  }
  const result: BoxMetadata = {
    provider: provider as BoxProvider,
    format,
    virtualSize: typeof size === 'number' ? size : undefined,
    disks,
    kernel: boxFile(record, 'kernel', problems),
    initrd: boxFile(record, 'initrd', problems),
    cmdline: optionalString(record, 'cmdline', problems),
    firmware: optionalString(record, 'firmware', problems),
    sshUser: optionalString(record, 'ssh_user', problems),
    architecture: optionalString(record, 'architecture', problems),
    name: optionalString(record, 'name', problems),
    version: optionalString(record, 'version', problems),
  }
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
