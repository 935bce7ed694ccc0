import {UserError} from '../errors/errors.js'
import type {MachineDriver} from './driver.js'

/** The engine a machine gets when nothing names one. */
export const DEFAULT_DRIVER = 'qemu'

/**
 * Built-in engines, loaded when a machine first needs one: `vm status` and `vm validate` do not
 * parse an engine's code before they use it (start-up time; see bench/startup).
 */
const builtIn = new Map<string, () => Promise<MachineDriver>>([
  ['qemu', async () => (await import('./qemu/driver.js')).qemuDriver],
  ['libvirt', async () => (await import('./libvirt/driver.js')).libvirtDriver],
])

const drivers = new Map<string, MachineDriver>()

/** Makes a driver available by its name (engines register here; tests add their own). */
export function registerDriver(driver: MachineDriver): () => void {
  drivers.set(driver.name, driver)
  return () => {
    drivers.delete(driver.name)
  }
}

/** The driver called `name`; an unknown name is the user's to fix. */
export async function driverNamed(name: string = DEFAULT_DRIVER): Promise<MachineDriver> {
  const registered = drivers.get(name)
  if (registered !== undefined) return registered
  const load = builtIn.get(name)
  if (load === undefined)
    throw new UserError(`No engine named "${name}"`, {
      code: 'UNKNOWN_DRIVER',
      hint: `Known engines: ${[...new Set([...builtIn.keys(), ...drivers.keys()])].join(', ')}.`,
    })
  const driver = await load()
  if (!drivers.has(name)) drivers.set(name, driver)
  return drivers.get(name)!
}

/** The driver that owns a machine: the one its record names (records without one are QEMU's). */
export async function driverOf(record: {driver?: string | undefined} | undefined): Promise<MachineDriver> {
  return driverNamed(record?.driver ?? DEFAULT_DRIVER)
}
