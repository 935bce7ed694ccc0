import type {HostFacts, MachineSpec, NicSpec} from './spec.js'

/** QEMU's -option value syntax escapes commas by doubling them. */
export function escapeOption(value: string): string {
  return value.replaceAll(',', ',,')
}

/**
 * The descriptor on which a resuming QEMU finds its saved state (`-incoming fd:3`): the first
 * one after stdin, stdout and stderr, where startQemu passes the file it opened.
 */
export const INCOMING_FD = 3

/** The block node name of the machine's disk `index` on QEMU's command line (QMP names disks by it). */
export function diskNodeName(index: number): string {
  return `disk${index}`
}

function netdev(nic: NicSpec, id: string): string {
  switch (nic.kind) {
    case 'user': {
      const forwards = nic.forwards.map((f) => `,hostfwd=${f.protocol}:${f.hostIp}:${f.hostPort}-:${f.guestPort}`).join('')
      return `user,id=${id}${nic.restrict === true ? ',restrict=on' : ''}${forwards}`
    }
    case 'tap':
      return `tap,id=${id},ifname=${escapeOption(nic.ifname)},script=no,downscript=no`
    case 'bridge':
      return `bridge,id=${id},br=${escapeOption(nic.bridge)}`
    case 'stream':
      return `stream,id=${id},server=off,addr.type=unix,addr.path=${escapeOption(nic.socket)}`
  }
}

/**
 * The QEMU command line for a machine: a pure function of the spec and the host facts, so
 * tests can pin it down. QEMU daemonizes itself, writes a pidfile, serves QMP on a Unix
 * socket and logs the serial console to a file.
 */
export function buildQemuArgs(spec: MachineSpec, host: HostFacts): string[] {
  const args: string[] = ['-name', `${escapeOption(spec.name)},process=vm-${spec.name}`]
  const useQboot = spec.kernel?.firmware === 'qboot' && host.qbootRom !== undefined
  args.push('-machine', `${useQboot ? 'pc' : 'q35'},accel=${spec.accel}`)
  // -cpu host exposes the real CPU under KVM; under TCG "max" is slower than the default model.
  args.push('-cpu', spec.accel === 'kvm' ? 'host' : 'qemu64')
  args.push('-smp', String(spec.cpus), '-m', String(spec.memoryMiB))
  args.push('-nodefaults', '-no-user-config')
  if (spec.vncDisplay === undefined) args.push('-display', 'none', '-vga', 'none')
  else args.push('-vga', 'std', '-vnc', `127.0.0.1:${spec.vncDisplay}`)
  if (spec.files.consoleSocket === undefined) args.push('-serial', `file:${spec.files.serialLog}`)
  else {
    // One console socket (vm console attaches to it; nobody needs to) that also logs everything to serial.log.
    const socket = escapeOption(spec.files.consoleSocket)
    args.push('-chardev', `socket,id=serial0,path=${socket},server=on,wait=off,logfile=${escapeOption(spec.files.serialLog)}`)
    args.push('-serial', 'chardev:serial0')
  }
  args.push('-pidfile', spec.files.pidfile)
  args.push('-qmp', `unix:${escapeOption(spec.files.qmpSocket)},server=on,wait=off`)
  args.push('-daemonize')
  if (useQboot) args.push('-bios', host.qbootRom as string)
  spec.disks.forEach((disk, index) => {
    // node-name: how QMP's snapshot commands name the disk (diskNodeName).
    const drive = `file=${escapeOption(disk.path)},format=${disk.format},if=virtio,index=${index},cache=writeback,discard=unmap`
    args.push('-drive', `${drive},node-name=${diskNodeName(index)}`)
  })
  if (spec.seed !== undefined)
    args.push('-drive', `file=${escapeOption(spec.seed)},format=raw,if=virtio,index=${spec.disks.length},readonly=on`)
  if (spec.kernel !== undefined) {
    args.push('-kernel', spec.kernel.kernel)
    if (spec.kernel.initrd !== undefined) args.push('-initrd', spec.kernel.initrd)
    if (spec.kernel.cmdline !== undefined) args.push('-append', spec.kernel.cmdline)
  }
  spec.nics.forEach((nic, index) => {
    args.push('-netdev', netdev(nic, `net${index}`))
    args.push('-device', `virtio-net-pci,netdev=net${index},mac=${nic.mac},romfile=`)
  })
  spec.shares.forEach((share, index) => {
    const readOnly = share.readOnly ? ',readonly=on' : ''
    args.push('-fsdev', `local,id=fs${index},path=${escapeOption(share.path)},security_model=none${readOnly}`)
    args.push('-device', `virtio-9p-pci,fsdev=fs${index},mount_tag=${share.tag}`)
  })
  // Entropy for the guest: without it dropbear and sshd wait for the pool at boot.
  args.push('-device', 'virtio-rng-pci')
  if (spec.incoming !== undefined) args.push('-incoming', spec.incoming)
  if (spec.loadvm !== undefined) args.push('-loadvm', spec.loadvm)
  return args
}
