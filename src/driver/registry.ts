import {UserError} from '../errors/errors.js'
import type {MachineDriver} from './driver.js'
import {qemuDriver} from './qemu/driver.js'

/** The engine a machine gets when nothing names one. */
export const DEFAULT_DRIVER = 'qemu'

const drivers = new Map<string, MachineDriver>([[qemuDriver.name, qemuDriver]])

/** Makes a driver available by its name (engines register here; tests add their own). */
export function registerDriver(driver: MachineDriver): () => void {
  drivers.set(driver.name, driver)
  return () => {
    drivers.delete(driver.name)
  }
}

/** The driver called `name`; an unknown name is the user's to fix. */
export function driverNamed(name: string = DEFAULT_DRIVER): MachineDriver {
  const driver = drivers.get(name)
  if (driver === undefined)
    throw new UserError(`No engine named "${name}"`, {
      code: 'UNKNOWN_DRIVER',
      hint: `Known engines: ${[...drivers.keys()].join(', ')}.`,
    })
  return driver
}

/** The driver that owns a machine: the one its record names (records without one are QEMU's). */
export function driverOf(record: {driver?: string | undefined} | undefined): MachineDriver {
  return driverNamed(record?.driver ?? DEFAULT_DRIVER)
}
