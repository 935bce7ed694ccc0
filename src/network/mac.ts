import {createHash} from 'node:crypto'

/** QEMU's locally administered OUI. */
export const QEMU_MAC_PREFIX = '52:54:00'

/**
 * A stable MAC for NIC `index` of the machine with this id: 52:54:00 plus three bytes of
 * sha256(id, index). `taken` holds MACs of other machines; on a clash the next salt is tried,
 * so two machines never share one.
 */
export function machineMac(machineId: string, index: number, taken: ReadonlySet<string> = new Set()): string {
  for (let salt = 0; salt < 1000; salt++) {
    const digest = createHash('sha256').update(`${machineId}/${index}/${salt}`).digest()
    const mac = `${QEMU_MAC_PREFIX}:${[...digest.subarray(0, 3)].map((byte) => byte.toString(16).padStart(2, '0')).join(':')}`
    if (!taken.has(mac)) return mac
  }
  throw new Error(`no free MAC for ${machineId}/${index}`)
}
