import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {UserError} from '../../errors/errors.js'
import {resolveForwards} from '../../network/forwards.js'
import {leasesDir} from '../../network/ports.js'
import type {MachineRecord} from '../../machine/record.js'
import {firstTimeThisBoot} from '../../state/once-per-boot.js'
import {labelledTail, readTail, type BootWatch} from '../../ssh/wait.js'
import {shareTag} from '../../sync/folders.js'
import type {MachineConfig} from '../../vmfile/types.js'
import type {CreatedMachine, DriverMachine, EngineState, MachineDriver, SerialConsole, Started, StartOptions, Stopped} from '../driver.js'
import {domainState, isAlive, vncAddress, waitUntilStopped} from './domain.js'
import {startForwarder, stopForwarder} from './forward.js'
import {chooseDomainType} from './host.js'
import {freshLease, latestExpiry, LEASE_POLL, parseLeases} from './leases.js'
import {attachNics} from './networks.js'
import {domainName, LibvirtFile, readPlacement, removePlacement, writePlacement, type Placement} from './placement.js'
import {libvirtUri, parseLibvirtUri} from './uri.js'
import {Virsh, withXmlFile} from './virsh.js'
import {deleteVolume, ensureBoxVolumes, machineVolumeName, volumeCapacity, volumePath} from './volumes.js'
import {renderDomainXml, type DomainSpec} from './xml.js'
import {consoleAttachCommand, extraVolumes, readRemoteConsoleLog, remoteConsoleLog, remoteConsoleTail, remoteSeed} from './console.js'
import {jumpVia} from './tunnel.js'
import {hasManagedSave, libvirtSnapshots, libvirtSuspension, startArgs, type DomainHandle} from './snapshot.js'

const QBOOT = '/usr/share/qemu/qboot.rom'

/** The console log file, when the libvirt host writes this host's files (a local URI); remote domains have none. */
function serialLogOf(dir: string, placement: Placement): string | undefined {
  return parseLibvirtUri(placement.uri).local ? path.join(dir, LibvirtFile.serialLog) : undefined
}

/**
 * The boot progress line of a remote domain: its console log is fetched over the libvirt
 * connection (vol-download), so the wait for SSH gets the last fetched tail at once and a
 * fresh fetch starts in the background (at most one at a time, every 2 s at most).
 */
function remoteTail(machine: CreatedMachine): {host: string; latest(lines: number): Promise<string>; now(lines: number): Promise<string>} {
  let text: string | undefined
  let fetching: Promise<void> | undefined
  let last = 0
  const fetchTail = async (lines: number): Promise<string> => {
    const placement = await readPlacement(machine.dir)
    if (placement === undefined) return ''
    return remoteConsoleTail(new Virsh(placement.uri), placement, lines)
  }
  const host = machine.record.libvirt === undefined ? 'the libvirt host' : parseLibvirtUri(machine.record.libvirt.uri).label
  return {
    host,
    async latest(lines) {
      if (fetching === undefined && Date.now() - last >= 2000) {
        last = Date.now()
        fetching = fetchTail(Math.max(lines, 40))
          .then((tail) => {
            text = tail
          })
          .catch(() => undefined)
          .finally(() => {
            fetching = undefined
          })
      }
      // The first answer waits for its fetch; later ones take what the last fetch found.
      if (text === undefined) await fetching
      return (text ?? '').split('\n').slice(-lines).join('\n')
    },
    now: (lines) => fetchTail(lines).catch(() => text ?? ''),
  }
}

async function placementOf(machine: DriverMachine): Promise<Placement> {
  const placement = await readPlacement(machine.dir)
  if (placement === undefined)
    throw new UserError(`Machine ${machine.name} has no libvirt placement (${LibvirtFile.placement}); it was not created completely`, {
      code: 'LIBVIRT_NOT_CREATED',
      hint: `Run "vm destroy -f ${machine.name}", then "vm up ${machine.name}".`,
    })
  return placement
}

/** A machine's domain as the snapshot and suspend operations reach it. */
async function domainOf(machine: DriverMachine): Promise<DomainHandle> {
  const placement = await placementOf(machine)
  const virsh = new Virsh(placement.uri)
  return {
    domain: placement.domain,
    local: virsh.host.local,
    virsh: async (args, doing, timeoutMs) => (await virsh.run(args, {doing, timeoutMs})).stdout,
  }
}

/** The synced folders a machine's domain gets as 9p: every 9p or auto folder, when the host is this one. */
export function sharesOf(config: MachineConfig, local: boolean): DomainSpec['shares'] {
  if (!local) return []
  return config.syncedFolders.flatMap((folder, index) =>
    folder.type === 'rsync' ? [] : [{tag: shareTag(index), path: folder.host, readOnly: folder.readOnly}],
  )
}

/** The domain's UUID, derived from the machine id: each boot redefines the same domain. */
export function domainUuid(id: string): string {
  const hex = createHash('sha256').update(`vmfile-domain:${id}`).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${((Number.parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

/** The domain a machine runs as: a pure function of its record, placement and the host's facts. */
export function domainSpec(
  record: MachineRecord,
  placement: Placement,
  disks: DomainSpec['disks'],
  nics: DomainSpec['nics'],
  type: DomainSpec['type'],
  serialLog: string | undefined,
  seed: string | undefined,
  qboot: string | undefined,
): DomainSpec {
  const config = record.config
  const box = record.box
  return {
    type,
    name: placement.domain,
    uuid: domainUuid(record.id),
    title: `vm machine ${record.name} (${record.projectDir})`,
    memoryMiB: config.memory,
    cpus: config.cpus,
    loader: placement.kernel !== undefined && box.firmware === 'qboot' ? qboot : undefined,
    kernel: placement.kernel === undefined ? undefined : {path: placement.kernel, initrd: placement.initrd, cmdline: box.cmdline},
    disks,
    seed,
    nics,
    shares: sharesOf(config, parseLibvirtUri(placement.uri).local),
    serialLog: serialLog ?? '',
    vnc: config.vnc,
  }
}

/** Polls the NAT network's leases until the first NIC has one from this boot; fails when the domain stops. */
async function waitForAddress(
  virsh: Virsh,
  placement: Placement,
  mac: string,
  before: string | undefined,
  timeoutMs: number,
  name: string,
): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let stateCheckedAt = Date.now()
  for (;;) {
    const {stdout} = await virsh.run(['net-dhcp-leases', placement.network, '--mac', mac], {
      doing: `read the DHCP leases of network ${placement.network}`,
    })
    const lease = freshLease(parseLeases(stdout), mac, before)
    if (lease !== undefined) return lease.address
    // Whether the domain still runs is asked less often than the leases (each is a round trip to the host).
    const checkState = Date.now() - stateCheckedAt >= LEASE_POLL.stateEveryMs || Date.now() >= deadline
    if (checkState && !isAlive(await domainState(virsh, placement.domain)))
      throw new UserError(`Machine ${name}'s libvirt domain ${placement.domain} stopped before its first NIC got an address`, {
        code: 'BOOT_FAILED',
        hint: `"virsh -c ${placement.uri} domstate --reason ${placement.domain}" says why.`,
      })
    if (checkState) stateCheckedAt = Date.now()
    if (Date.now() >= deadline)
      throw new UserError(
        `Machine ${name} got no DHCP lease on libvirt network ${placement.network} within ${Math.round(timeoutMs / 1000)} s`,
        {
          code: 'BOOT_TIMEOUT',
          hint: 'The guest must run a DHCP client on its first NIC; "vm console" or the serial log shows its boot.',
        },
      )
    await sleep(LEASE_POLL.intervalMs)
  }
}

/**
 * libvirt, on this host or a remote one (`virsh -c URI` for everything): one persistent domain
 * per machine, volumes in a storage pool backed by a box volume uploaded once per host, the
 * first NIC on a NAT network with DHCP, SSH to the guest's own address (through the libvirt
 * host for remote URIs).
 */
export const libvirtDriver: MachineDriver = {
  name: 'libvirt',
  displayName: 'libvirt domain',
  features: {
    shares: ['9p', 'rsync'],
    networks: ['bridged', 'private'],
    ssh: 'guest-address',
    snapshots: true,
    suspend: true,
  },
  natAddress: undefined,
  snapshots: libvirtSnapshots(domainOf),
  // Once libvirt has saved the domain (it is shut off), what the machine held is given back as stop does.
  suspension: libvirtSuspension(domainOf, (machine) => libvirtDriver.stop(machine, 0)),

  shares(config) {
    // A remote daemon cannot export this host's directories: folders are copied with rsync.
    return parseLibvirtUri(libvirtUri(config.libvirt.uri)).local ? ['9p', 'rsync'] : ['rsync']
  },

  async probeHost(requested) {
    // The host is the machine's libvirt host, probed in start (per URI, cached).
    return {accel: requested}
  },

  validate(config) {
    const problems: ReturnType<MachineDriver['validate']> = []
    const at = (key: string, message: string) => problems.push({line: 0, col: 0, path: `machines.${config.name}.${key}`, message})
    try {
      parseLibvirtUri(libvirtUri(config.libvirt.uri))
    } catch (error) {
      // Without libvirt.uri in the Vmfile, the URI came from the environment: say so.
      at('libvirt.uri', `${config.libvirt.uri === undefined ? 'LIBVIRT_DEFAULT_URI: ' : ''}${(error as Error).message}`)
    }
    if (config.nat.isolated)
      at(
        'nat.isolated',
        'is not supported by the libvirt engine (its first NIC is on a libvirt NAT network); remove it or use provider: qemu',
      )
    return problems
  },

  diskFiles(machine) {
    // The disks are volumes on the libvirt host; the placement file stands for them here.
    return [path.join(machine.dir, LibvirtFile.placement)]
  },

  async createDisks(machine, sizeMiB) {
    const config = machine.record.config
    const uri = libvirtUri(config.libvirt.uri)
    const virsh = new Virsh(uri)
    const pool = config.libvirt.pool
    const info = await virsh.run(['pool-info', pool], {doing: `use storage pool ${pool}`, pool})
    if (!/^State:\s+running/m.test(info.stdout))
      throw new UserError(`Storage pool ${pool} on ${virsh.host.label} is not active`, {
        code: 'LIBVIRT_POOL_INACTIVE',
        hint: `Start it: virsh -c ${uri} pool-start ${pool}`,
      })
    const box = await ensureBoxVolumes(virsh, pool, machine.record.box)
    const placement: Placement = {
      uri,
      pool,
      network: config.libvirt.network,
      domain: domainName(machine.name, machine.id),
      volumes: [],
      kernel: box.kernel,
      initrd: box.initrd,
    }
    try {
      for (const [index, disk] of box.disks.entries()) {
        const volume = machineVolumeName(machine.id, index)
        const boxBytes = await volumeCapacity(virsh, pool, disk.volume)
        const bytes = index === 0 && sizeMiB !== undefined ? Math.max(boxBytes, sizeMiB * 1024 * 1024) : boxBytes
        await virsh.run(
          [
            'vol-create-as',
            pool,
            volume,
            String(bytes),
            '--format',
            'qcow2',
            '--backing-vol',
            disk.volume,
            '--backing-vol-format',
            disk.format,
          ],
          {doing: `create volume ${volume}`, pool},
        )
        placement.volumes.push(volume)
      }
      await writePlacement(machine.dir, placement)
    } catch (error) {
      for (const volume of placement.volumes) await deleteVolume(virsh, pool, volume).catch(() => undefined)
      throw error
    }
  },

  async start(machine: CreatedMachine, _host, options: StartOptions): Promise<Started> {
    // Continuing from a managed save or a snapshot with memory: the guest keeps its address.
    const continuing = options.from !== undefined
    const placement = await placementOf(machine)
    const virsh = new Virsh(placement.uri)
    let record = machine.record
    const wanted = libvirtUri(record.config.libvirt.uri)
    if (wanted !== placement.uri)
      options.warn(
        `machine ${machine.name} stays on ${placement.uri}, where it was created (the Vmfile now says ${wanted}); "vm destroy" and "vm up" move it`,
      )
    // What the domain needs from the host is read concurrently: each virsh call is a round trip to the host.
    const nicsRead = attachNics(virsh, record, placement.network)
    const [choice, nics, disks, leasesBefore] = await Promise.all([
      chooseDomainType(virsh, record.config.accel),
      nicsRead,
      Promise.all(
        placement.volumes.map(async (volume, index) => ({
          path: await volumePath(virsh, placement.pool, volume),
          format: 'qcow2' as const,
          target: `vd${String.fromCharCode(97 + index)}`,
        })),
      ),
      // The leases before the start (the NAT network exists once the NICs are attached).
      nicsRead.then((attached) =>
        virsh.run(['net-dhcp-leases', placement.network, '--mac', attached[0]!.mac], {
          doing: `read the DHCP leases of network ${placement.network}`,
        }),
      ),
    ])
    if (
      choice.warning !== undefined &&
      (await firstTimeThisBoot(`host-warning-libvirt-${createHash('sha256').update(choice.warning).digest('hex').slice(0, 12)}`))
    )
      options.warn(`${choice.warning} (said once per host boot; "vm status" shows each machine's accelerator)`)
    const localLog = serialLogOf(machine.dir, placement)
    if (localLog !== undefined) await rm(localLog, {force: true})
    // A remote host logs the console into a volume of the machine, and reads the seed from one (console.ts).
    const serialLog = localLog ?? (await remoteConsoleLog(virsh, placement, machine, options.warn))
    const localSeed = record.cloudInit === undefined ? undefined : path.join(machine.dir, record.cloudInit.seed)
    const seed = localSeed === undefined || virsh.host.local ? localSeed : await remoteSeed(virsh, placement, machine, localSeed)
    const qboot = virsh.host.local ? (existsSync(QBOOT) ? QBOOT : undefined) : QBOOT
    const xml = await renderDomainXml(domainSpec(record, placement, disks, nics, choice.type, serialLog, seed, qboot))
    // A persistent domain (as Vagrant users expect: virsh list --all shows it), defined afresh from the record each boot;
    // not when it continues: its saved state or snapshot holds the definition it runs with.
    if (!continuing) await withXmlFile(xml, (file) => virsh.run(['define', file], {doing: `define domain ${placement.domain}`}))
    const mac = nics[0]!.mac
    const before = latestExpiry(parseLeases(leasesBefore.stdout), mac)
    record = {...record, libvirt: {uri: placement.uri, pool: placement.pool, domain: placement.domain}}
    await options.save(record)
    // A managed save resumes with a plain start; a snapshot is reverted to, running.
    await virsh.run(startArgs(placement.domain, options.from), {
      doing:
        options.from?.kind === 'snapshot'
          ? `continue domain ${placement.domain} from snapshot ${options.from.name}`
          : `start domain ${placement.domain}`,
      timeoutMs: continuing ? 600_000 : undefined,
    })
    // A guest that continues asks for no new lease: its current one (or the address it had) is where it answers.
    const kept = continuing
      ? (freshLease(parseLeases(leasesBefore.stdout), mac, undefined)?.address ?? machine.record.ssh?.host)
      : undefined
    const address = kept ?? (await waitForAddress(virsh, placement, mac, before, record.config.bootTimeout * 1000, machine.name))
    // forwarded_ports: a keeper per machine (forward.ts), from the guest's address as soon as it is known.
    const leases = await leasesDir()
    const forwards = await resolveForwards(machine.name, record.config.forwardedPorts, leases, record.id, options.info)
    await startForwarder(
      machine,
      {guest: address, jump: virsh.host.jump, forwards, domain: {uri: placement.uri, name: placement.domain}},
      leases,
    )
    record = {...record, forwards}
    const jump = await jumpVia(placement.uri, virsh.host.jump)
    return {record, ssh: {host: address, port: record.config.ssh.port, jump}, accel: choice.accel}
  },

  bootWatch(machine): BootWatch {
    const log = path.join(machine.dir, LibvirtFile.serialLog)
    const uri = machine.record.libvirt?.uri
    const local = uri === undefined || parseLibvirtUri(uri).local
    const remote = local ? undefined : remoteTail(machine)
    return {
      engine: 'libvirt domain',
      isAlive: async () => {
        const placement = await readPlacement(machine.dir)
        return placement !== undefined && isAlive(await domainState(new Virsh(placement.uri), placement.domain))
      },
      consoleTail: (lines) => (remote === undefined ? readTail(log, lines) : remote.latest(lines)),
      bootEvidence: async () =>
        remote === undefined
          ? labelledTail(`serial log (${log}):`, await readTail(log))
          : labelledTail(`serial log (on ${remote.host}):`, await remote.now(15)),
    }
  },

  async serialConsole(machine): Promise<SerialConsole> {
    const log = path.join(machine.dir, LibvirtFile.serialLog)
    const placement = await readPlacement(machine.dir)
    if (placement === undefined) return {socket: undefined, log}
    // virsh console joins the terminal to the domain's pty, here or on a remote host.
    const attach = consoleAttachCommand(placement)
    if (parseLibvirtUri(placement.uri).local) return {socket: undefined, log, attach}
    return {socket: undefined, log, attach, readLog: () => readRemoteConsoleLog(new Virsh(placement.uri), placement)}
  },

  async inspect(machine): Promise<EngineState> {
    const placement = await readPlacement(machine.dir)
    if (placement === undefined) return {alive: false, cleanPowerOff: false}
    const virsh = new Virsh(placement.uri)
    // A host that does not answer (packets dropped, not refused) must not hold vm status for virsh's 2 minutes.
    const state = await domainState(virsh, placement.domain, 30_000)
    const alive = isAlive(state)
    let vnc: string | undefined
    if (alive && machine.record?.config.vnc === true) {
      const display = await virsh.runUnless('other', ['vncdisplay', placement.domain], {
        doing: `read the VNC display of ${placement.domain}`,
      })
      vnc = display === undefined ? undefined : vncAddress(display.stdout)
    }
    // A shut-off domain may hold a managed save (vm suspend): libvirt starts it from there.
    const saved =
      alive || state.state === 'missing'
        ? false
        : hasManagedSave((await virsh.run(['dominfo', placement.domain], {doing: `read domain ${placement.domain}`})).stdout)
    // libvirt says why a domain is off: "shutdown" is the guest powering itself off.
    return {alive, cleanPowerOff: state.state === 'shut off' && state.reason === 'shutdown', vnc, saved}
  },

  async stop(machine, graceMs): Promise<Stopped> {
    if (machine.id !== undefined) await stopForwarder({...machine, id: machine.id}, await leasesDir())
    const placement = await readPlacement(machine.dir)
    if (placement === undefined) return {method: 'already-stopped', record: machine.record}
    const virsh = new Virsh(placement.uri)
    if (!isAlive(await domainState(virsh, placement.domain))) return {method: 'already-stopped', record: machine.record}
    if (graceMs > 0) {
      await virsh.runUnless('other', ['shutdown', '--mode', 'acpi', placement.domain], {doing: `shut down domain ${placement.domain}`})
      if (await waitUntilStopped(virsh, placement.domain, graceMs)) return {method: 'acpi', record: machine.record}
    }
    await virsh.runUnless('other', ['destroy', placement.domain], {doing: `stop domain ${placement.domain}`})
    if (!(await waitUntilStopped(virsh, placement.domain, 10_000)))
      throw new UserError(`Domain ${placement.domain} on ${virsh.host.label} does not stop`, {
        hint: `virsh -c ${placement.uri} destroy ${placement.domain}`,
      })
    return {method: 'killed', record: machine.record}
  },

  async destroy(machine) {
    if (machine.id !== undefined) await stopForwarder({...machine, id: machine.id}, await leasesDir())
    const placement = await readPlacement(machine.dir)
    if (placement === undefined) return {ids: []}
    const virsh = new Virsh(placement.uri)
    if (isAlive(await domainState(virsh, placement.domain)))
      await virsh.runUnless('other', ['destroy', placement.domain], {doing: `stop domain ${placement.domain}`})
    await virsh.runUnless('domain-missing', ['undefine', '--snapshots-metadata', '--nvram', '--managed-save', placement.domain], {
      doing: `remove domain ${placement.domain}`,
    })
    // The machine's volumes go (disks, console log, seed); the box volume stays for the next machine of the box.
    for (const volume of [...placement.volumes, ...extraVolumes(placement)]) await deleteVolume(virsh, placement.pool, volume)
    await removePlacement(machine.dir)
    await rm(path.join(machine.dir, LibvirtFile.serialLog), {force: true})
    return {ids: machine.id === undefined ? [] : [machine.id]}
  },
}
