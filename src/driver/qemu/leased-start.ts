import {stderrOf, UserError} from '../../errors/errors.js'
import {failedHostForward, releaseForwards, replaceClashedForward, sameHostPort, type ResolvedForward} from '../../network/forwards.js'
import {leasePort, releaseLease, SSH_PORT_RANGE} from '../../network/ports.js'
import type {ForwardedPort} from '../../vmfile/types.js'

export interface LeasedStart {
  pid: number
  sshPort: number
  forwards: ResolvedForward[]
}

/**
 * Starts QEMU with a leased SSH port and the leased forwarded ports. A program that binds one
 * of them between its lease and QEMU's start (it takes no lease) makes QEMU fail, and its
 * stderr names the rule: a clash on the SSH port takes the next SSH port; on a forwarded port
 * it is an error naming that port, its protocol and the machine, unless auto_correct lets
 * another leased port replace it. On failure every lease taken here or in `forwards` is
 * given back; on success they belong to this process until transferred to QEMU.
 */
export async function startWithLeasedPorts(options: {
  machine: string
  leaseDir: string
  owner: string
  forwards: ResolvedForward[]
  ports: readonly ForwardedPort[]
  start: (sshPort: number, forwards: ResolvedForward[]) => Promise<number>
  onCorrected: (text: string) => void
  attempts?: number
}): Promise<LeasedStart> {
  const {leaseDir, owner} = options
  let forwards = options.forwards
  const tried = new Set<number>()
  let clashed: string | undefined
  try {
    for (let attempt = 0; attempt < (options.attempts ?? 5); attempt++) {
      const sshPort = await leasePort(leaseDir, owner, SSH_PORT_RANGE, tried)
      tried.add(sshPort)
      try {
        return {pid: await options.start(sshPort, forwards), sshPort, forwards}
      } catch (error) {
        await releaseLease(leaseDir, sshPort, owner)
        const failed = failedHostForward(stderrOf(error))
        if (failed === undefined) throw error
        clashed = `${failed.hostIp || '0.0.0.0'}:${failed.port}/${failed.protocol}`
        if (sameHostPort(failed, {port: sshPort, protocol: 'tcp', hostIp: '127.0.0.1'})) continue
        const replaced = await replaceClashedForward(options.machine, failed, forwards, options.ports, leaseDir, owner, options.onCorrected)
        if (replaced === undefined) throw error
        forwards = replaced
      }
    }
    throw new UserError(
      `Could not start machine ${options.machine}: its host ports kept being taken by other programs while it started (last: ${clashed})`,
      {
        code: 'PORT_IN_USE',
        hint: `Free some ports between ${SSH_PORT_RANGE[0]} and ${SSH_PORT_RANGE[1]} on 127.0.0.1 (and the forwarded ports), then run vm up again.`,
      },
    )
  } catch (error) {
    await releaseForwards(leaseDir, owner, forwards)
    throw error
  }
}
