import {spawn, spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * A private LAN for network tests, entirely inside a network namespace this test creates:
 * bridge br0, a veth pair whose one end is on the bridge and whose other end (10.77.0.1/24)
 * serves DHCP with dnsmasq (10.77.0.50-99). Nothing touches the host's own network.
 */
export interface Lan {
  ns: string
  /** Prefix that runs a command inside the namespace. */
  wrap: string[]
  /** Runs a command inside the namespace; returns its status and output. */
  exec(command: string[]): {status: number; stdout: string; stderr: string}
  /** The dnsmasq lease lines (expiry mac ip hostname client-id). */
  leases(): string[]
  /** Names of the links in the namespace. */
  links(): string[]
  /** Kills dnsmasq (by PID) and deletes the namespace with everything in it. */
  cleanup(): void
}

function must(command: string[]): void {
  const result = spawnSync(command[0]!, command.slice(1), {encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`${command.join(' ')} failed: ${result.stderr}`)
}

export async function createLan(dir: string): Promise<Lan> {
  const ns = `vmt-${process.pid}-${Math.random().toString(36).slice(2, 7)}`
  const inNs = (command: string[]): string[] => ['ip', 'netns', 'exec', ns, ...command]
  const inNsArgs = (command: string[]): string[] => inNs(command).slice(1)
  let dnsmasqPid: number | undefined
  const cleanup = (): void => {
    if (dnsmasqPid !== undefined) {
      try {
        process.kill(dnsmasqPid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', ns])
  }
  try {
    must(['ip', 'netns', 'add', ns])
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    must(['ip', '-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
    must(['ip', '-n', ns, 'link', 'set', 'br0', 'up'])
    must(['ip', '-n', ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'dhcp0'])
    must(['ip', '-n', ns, 'link', 'set', 'lan0', 'master', 'br0', 'up'])
    must(['ip', '-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'dhcp0'])
    must(['ip', '-n', ns, 'link', 'set', 'dhcp0', 'up'])
    const leaseFile = path.join(dir, 'dnsmasq.leases')
    const dnsmasq = inNs([
      'dnsmasq',
      '--conf-file=/dev/null',
      '--keep-in-foreground',
      '--no-resolv',
      '--port=0',
      '--interface=dhcp0',
      '--bind-interfaces',
      '--dhcp-range=10.77.0.50,10.77.0.99,1h',
      `--dhcp-leasefile=${leaseFile}`,
      '--pid-file=',
    ])
    const child = spawn(dnsmasq[0]!, dnsmasq.slice(1), {stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    // ip netns exec execs dnsmasq in place, so the child's PID is dnsmasq's.
    dnsmasqPid = child.pid
    await sleep(300)
    if (child.exitCode !== null) throw new Error(`dnsmasq exited with ${child.exitCode}: ${stderr}`)
    return {
      ns,
      wrap: inNs([]),
      exec(command) {
        const result = spawnSync('ip', inNsArgs(command), {encoding: 'utf8'})
        return {status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr}
      },
      leases: () =>
        existsSync(leaseFile)
          ? readFileSync(leaseFile, 'utf8')
              .split('\n')
              .filter((line) => line.trim() !== '')
          : [],
      links: () =>
        spawnSync('ip', ['-n', ns, '-o', 'link'], {encoding: 'utf8'})
          .stdout.split('\n')
          .map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '')
          .filter((name) => name !== ''),
      cleanup,
    }
  } catch (error) {
    cleanup()
    throw error
  }
}
