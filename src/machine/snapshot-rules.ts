import {UsageError, UserError} from '../errors/errors.js'
import type {MachineDriver} from '../driver/driver.js'
import type {SnapshotRecord} from './record.js'

/** The pure rules of vm snapshot: names, argument forms, push names, what blocks a restore. */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * Refuses a snapshot name vm cannot keep safely: QEMU finds snapshots by name or by numeric
 * id, so an all-digit name could pick another snapshot; spaces and shell or option characters
 * are kept out of every command line.
 */
export function checkSnapshotName(name: string): void {
  if (!NAME.test(name) || /^\d+$/.test(name)) {
    throw new UsageError(`"${name}" is not a usable snapshot name`, {
      hint: 'Use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit and not all digits (e.g. before-upgrade).',
    })
  }
}

/**
 * `vm snapshot save [MACHINE] SNAPSHOT`: with one argument it is the snapshot (of the primary or
 * only machine), with two the machine comes first.
 */
export function machineAndSnapshot(args: ReadonlyArray<string | undefined>, verb: string): {machine: string | undefined; snapshot: string} {
  const given = args.filter((arg): arg is string => arg !== undefined)
  if (given.length === 0)
    throw new UsageError(`vm snapshot ${verb} needs the snapshot's name`, {hint: `Run "vm snapshot ${verb} [MACHINE] SNAPSHOT".`})
  if (given.length > 2)
    throw new UsageError(`vm snapshot ${verb} takes at most a machine and a snapshot, got ${given.length} arguments`, {
      hint: `Run "vm snapshot ${verb} [MACHINE] SNAPSHOT".`,
    })
  return given.length === 1 ? {machine: undefined, snapshot: given[0]!} : {machine: given[0], snapshot: given[1]!}
}

const pad = (value: number): string => String(value).padStart(2, '0')

/** The name of a pushed snapshot: push-YYYYMMDD-HHMMSS (UTC), with -2, -3 ... when taken. */
export function pushName(now: Date, taken: ReadonlySet<string>): string {
  const stamp = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`
  const base = `push-${stamp}`
  if (!taken.has(base)) return base
  for (let suffix = 2; ; suffix++) if (!taken.has(`${base}-${suffix}`)) return `${base}-${suffix}`
}

/** The snapshot vm snapshot pop takes: the newest pushed one the engine still holds. */
export function newestPushed(records: readonly SnapshotRecord[], held: ReadonlySet<string>): SnapshotRecord | undefined {
  return records
    .filter((record) => record.pushed === true && held.has(record.name))
    .reduce<SnapshotRecord | undefined>(
      (newest, record) => (newest === undefined || record.createdAt >= newest.createdAt ? record : newest),
      undefined,
    )
}

function sizes(values: readonly number[]): string {
  return values.map((bytes) => `${(bytes / 1024 ** 3).toFixed(bytes % 1024 ** 3 === 0 ? 0 : 2)} GiB`).join(', ')
}

/**
 * Why snapshot `name` cannot be restored onto the machine as it is now, or undefined: it must
 * have been taken by vm (which recorded its box and disk sizes) on the same box version with
 * the same disk sizes.
 */
export function restoreProblem(
  name: string,
  recorded: SnapshotRecord | undefined,
  now: {box: {name: string; version: string}; diskSizes: readonly number[]},
): string | undefined {
  if (recorded === undefined) return `snapshot ${name} was not taken by vm: there is no record of the box and disk sizes it was taken on`
  if (recorded.box.name !== now.box.name || recorded.box.version !== now.box.version)
    return `snapshot ${name} was taken on box ${recorded.box.name} ${recorded.box.version}; the machine now runs ${now.box.name} ${now.box.version}`
  if (recorded.diskSizes.length !== now.diskSizes.length || recorded.diskSizes.some((size, index) => size !== now.diskSizes[index]))
    return `snapshot ${name} was taken with disk size ${sizes(recorded.diskSizes)}; the machine's disk is now ${sizes(now.diskSizes)}`
  return undefined
}

/** The driver's snapshot operations; an engine without them is refused with the reason. */
export function snapshotSupport(driver: MachineDriver, machine: string): NonNullable<MachineDriver['snapshots']> {
  if (!driver.features.snapshots || driver.snapshots === undefined)
    throw new UserError(`The ${driver.displayName} engine of machine ${machine} does not support snapshots`, {
      code: 'UNSUPPORTED',
      hint: 'Snapshots need an engine that declares them (the qemu engine does).',
    })
  return driver.snapshots
}

/** The driver's suspend operations; an engine without them is refused with the reason. */
export function suspendSupport(driver: MachineDriver, machine: string): NonNullable<MachineDriver['suspension']> {
  if (!driver.features.suspend || driver.suspension === undefined)
    throw new UserError(`The ${driver.displayName} engine of machine ${machine} does not support suspend and resume`, {
      code: 'UNSUPPORTED',
      hint: 'Use "vm halt" and "vm up" instead, or an engine that declares suspend (the qemu engine does).',
    })
  return driver.suspension
}
