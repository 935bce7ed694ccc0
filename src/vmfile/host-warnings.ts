import {totalmem} from 'node:os'

import type {ProjectConfig} from './types.js'
import {formatSizeMiB} from './units.js'

/**
 * What this host cannot give the project, as warnings (the Vmfile may be meant for another
 * host): a machine with more memory than the host has would swap or be killed. Kept apart
 * from loadProject because commands warn only about the machines they start.
 */
export function hostWarnings(config: ProjectConfig, hostMiB = Math.floor(totalmem() / 1024 / 1024)): string[] {
  return config.machines
    .filter((machine) => machine.memory > hostMiB)
    .map(
      (machine) =>
        `machine ${machine.name} asks for ${formatSizeMiB(machine.memory)} of memory, more than this host has (${formatSizeMiB(hostMiB)}); it may fail to start or be killed`,
    )
}
