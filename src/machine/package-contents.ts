import path from 'node:path'

import {UsageError} from '../errors/errors.js'
import type {PinnedBox} from './record.js'

/**
 * What `vm package` puts in a box, as pure functions: the archive's file list, metadata.json,
 * the default Vagrantfile and the script that makes the guest fit to be copied.
 */

export const PACKAGED_DISK = 'box.img'
export const INCLUDE_DIR = 'include'
const GIB = 1024 ** 3

/** Where each --include file goes in the box: include/BASENAME; two files of one name are refused. */
export function includeEntries(files: readonly string[]): Array<{source: string; entry: string}> {
  const seen = new Map<string, string>()
  return files.map((source) => {
    const name = path.basename(source)
    const other = seen.get(name)
    if (other !== undefined) {
      throw new UsageError(`--include ${source} and --include ${other} would both be ${INCLUDE_DIR}/${name} in the box`, {
        hint: 'Include files of different names (rename one, or put them in one directory and include an archive of it).',
      })
    }
    seen.set(name, source)
    return {source, entry: `${INCLUDE_DIR}/${name}`}
  })
}

/** The box's virtual_size in GB (Vagrant's libvirt unit): the disk's size rounded up, never below the original box's. */
export function virtualSizeGb(diskBytes: number, boxGb: number | undefined): number {
  return Math.max(Math.ceil(diskBytes / GIB), boxGb ?? 0, 1)
}

export interface PackageMetadataInput {
  box: Pick<PinnedBox, 'architecture' | 'cmdline' | 'firmware' | 'initrd' | 'kernel'>
  diskBytes: number
  boxVirtualSize: number | undefined
  sshUser: string
  /** A machine of a cloud image: the package is a cloud image too (no key; its machines get a seed). */
  cloudInit?: boolean | undefined
}

/**
 * metadata.json of a packaged machine: a libvirt box (what vagrant-libvirt and vm box add read)
 * with one qcow2 disk, its virtual_size, and, for a box that boots its kernel directly, the
 * kernel, initrd, command line and firmware under the names they have in the archive. It names
 * no box name or version: the one who adds it chooses them (vm box add --name, as Vagrant).
 */
export function packageMetadata(input: PackageMetadataInput): Record<string, unknown> {
  const {box} = input
  const metadata: Record<string, unknown> = {
    provider: 'libvirt',
    format: 'qcow2',
    virtual_size: virtualSizeGb(input.diskBytes, input.boxVirtualSize),
    architecture: box.architecture,
  }
  if (box.kernel !== undefined) {
    metadata.kernel = path.basename(box.kernel)
    if (box.initrd !== undefined) metadata.initrd = path.basename(box.initrd)
    if (box.cmdline !== undefined) metadata.cmdline = box.cmdline
    if (box.firmware !== undefined) metadata.firmware = box.firmware
  }
  metadata.ssh_user = input.sshUser
  if (input.cloudInit === true) metadata.cloud_init = true
  return metadata
}

/**
 * The files of the archive in order: metadata.json first (vm box add reads it before the
 * disk), then the kernel, initrd, Vagrantfile, includes, and the disk last: all before it is
 * written while the disk is still being exported.
 */
export function archiveFiles(metadata: Record<string, unknown>, includes: ReadonlyArray<{entry: string}>): string[] {
  const files = ['metadata.json']
  if (typeof metadata.kernel === 'string') files.push(metadata.kernel)
  if (typeof metadata.initrd === 'string') files.push(metadata.initrd)
  files.push('Vagrantfile', ...includes.map((include) => include.entry), PACKAGED_DISK)
  return files
}

/** A Ruby double-quoted string literal of `text` (no interpolation). */
function rubyString(text: string): string {
  return `"${text.replace(/[\\"#]/g, (char) => `\\${char}`).replace(/\n/g, '\\n')}"`
}

/**
 * The box's Vagrantfile when none is given: vagrant-libvirt settings matching metadata.json
 * (direct kernel boot, the login user when it is not vagrant), so `vagrant up` boots the box
 * the way vm does.
 */
export function defaultVagrantfile(metadata: Record<string, unknown>): string {
  const lines = ['# Made by vm package.', 'Vagrant.configure("2") do |config|']
  if (typeof metadata.ssh_user === 'string' && metadata.ssh_user !== 'vagrant')
    lines.push(`  config.ssh.username = ${rubyString(metadata.ssh_user)}`)
  lines.push('  config.vm.provider :libvirt do |libvirt|', '    libvirt.driver = "kvm"')
  const here = (file: string): string => `File.join(File.dirname(__FILE__), ${rubyString(file)})`
  if (typeof metadata.kernel === 'string') lines.push(`    libvirt.kernel = ${here(metadata.kernel)}`)
  if (typeof metadata.initrd === 'string') lines.push(`    libvirt.initrd = ${here(metadata.initrd)}`)
  if (typeof metadata.cmdline === 'string') lines.push(`    libvirt.cmd_line = ${rubyString(metadata.cmdline)}`)
  lines.push('  end', 'end', '')
  return lines.join('\n')
}

/** A shell single-quoted word. */
function shellWord(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}

/** The line the guest script prints on what it did with the SSH host keys. */
export const HOST_KEYS_LINE = /^vm-package: host keys (removed|kept)$/m
/** The line the guest script ends with: whether every filesystem on a disk was left synced and read-only. */
export const FILESYSTEMS_LINE = /^vm-package: filesystems (read-only|writable)$/m

/**
 * The script (for `sh -s`, as the login user) that makes the guest fit to be copied, in one
 * SSH session. As the login user it writes the keys the package trusts (`publicKeys`;
 * undefined: authorized_keys is left alone) beside authorized_keys; then, as root, removes what
 * must differ between machines (SSH host keys, but only where the guest makes new ones at
 * boot: dropbear -R, a systemd unit that runs ssh-keygen, cloud-init, or a unit added here; the
 * machine-id, emptied as in vm's own boxes), puts the new authorized_keys in place, syncs and,
 * last, makes every filesystem on a disk read-only with the kernel's emergency remount (sysrq
 * `u`: each one synced and marked clean, as an unmount leaves it), so the engine can stop the
 * machine at once instead of waiting for a power-off. With `cloudInit`, cloud-init is reset
 * (`cloud-init clean`) so that every machine made from the package, and this one at its next
 * boot, runs it again with its own seed (user, key, host keys). It prints what it did with the
 * host keys (HOST_KEYS_LINE) and whether the filesystems are read-only (FILESYSTEMS_LINE); when
 * they are not, the machine must be powered off the slow way.
 *
 * Under software emulation every process the guest starts costs milliseconds: whether the login
 * user is root is known here (`loginIsRoot`), so the script starts sudo (or, for root, sh) at
 * once instead of asking `id` first, and makes ~/.ssh only when it is missing.
 */
export function guestPrepareScript(publicKeys: readonly string[] | undefined, cloudInit = false, loginIsRoot = false): string {
  // The keys the package trusts replace the machine's own (a rename keeps their owner and mode).
  const putKeys = publicKeys === undefined ? '' : 'mv -f "$1/.ssh/authorized_keys.new" "$1/.ssh/authorized_keys"\n'
  const root = String.raw`set -e
keys=kept
cloud=${cloudInit ? 1 : 0}
# dropbear started with -R makes missing host keys on the first connection. Its sessions are
# forks of it, with its command line: the parent of this login ($2) is read first (one process);
# when that is not dropbear, every dropbear's command line, read at once.
args=" $(tr '\000' ' ' 2>/dev/null <"/proc/$2/cmdline" || :)"
case "$args" in
  *" dropbear "*|*"/dropbear "*) ;;
  *)
    args=
    cmdlines=
    for pid in $(pidof dropbear 2>/dev/null); do cmdlines="$cmdlines /proc/$pid/cmdline"; done
    # shellcheck disable=SC2086
    [ -z "$cmdlines" ] || args=" $(cat $cmdlines 2>/dev/null | tr '\000' ' ')"
    ;;
esac
# (The program's name and an argument starting with -R are matched apart: one space is between them.)
case "$args" in
  *" dropbear "*|*"/dropbear "*) case "$args" in *" -R"*) rm -f /etc/dropbear/dropbear_*_host_key; keys=removed ;; esac ;;
esac
# A cloud image: cloud-init makes new host keys for every new instance.
if [ "$cloud" = 1 ]; then
  cloud-init clean --logs
  rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
  keys=removed
# OpenSSH under systemd: a unit makes missing host keys before sshd starts.
elif [ -e /etc/ssh/sshd_config ] && [ -d /run/systemd/system ]; then
  if ! grep -qs ssh-keygen /etc/systemd/system/*.service /lib/systemd/system/*.service /usr/lib/systemd/system/*.service; then
    cat >/etc/systemd/system/vmfile-package-host-keys.service <<'UNIT'
[Unit]
Description=Generate this machine's SSH host keys
Before=ssh.service sshd.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
    systemctl enable -q vmfile-package-host-keys.service
  fi
  rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
  keys=removed
fi
# machine-id: empty, made anew at the next boot (systemd), as in vm's own boxes.
if [ -s /etc/machine-id ]; then : >/etc/machine-id; fi
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi
${putKeys}sync
echo "vm-package: host keys $keys"
# Last: every filesystem on a block device synced, marked clean and read-only.
writable() {
  while read -r dev _mnt _type opts _rest; do
    case "$dev" in /dev/*) case ",$opts," in *,rw,*) return 0 ;; esac ;; esac
  done </proc/mounts
  return 1
}
state=writable
if [ -w /proc/sysrq-trigger ] && echo u >/proc/sysrq-trigger 2>/dev/null; then
  # The remount runs in the kernel's background; checked every 20 ms, for up to 10 s.
  tries=0
  while writable && [ "$tries" -lt 500 ]; do sleep 0.02 2>/dev/null || { sleep 1; tries=$((tries + 49)); }; tries=$((tries + 1)); done
  writable || state=read-only
fi
echo "vm-package: filesystems $state"`
  const lines = ['set -e']
  if (publicKeys !== undefined) {
    lines.push(
      'umask 077',
      '[ -d "$HOME/.ssh" ] || mkdir -p "$HOME/.ssh"',
      publicKeys.length === 0
        ? ': >"$HOME/.ssh/authorized_keys.new"'
        : `printf '%s\\n' ${publicKeys.map(shellWord).join(' ')} >"$HOME/.ssh/authorized_keys.new"`,
    )
  }
  // When the root part fails, the machine keeps its own key (the new file is removed).
  const onFailure = publicKeys === undefined ? '' : ' || { status=$?; rm -f "$HOME/.ssh/authorized_keys.new"; exit "$status"; }'
  lines.push(`${loginIsRoot ? 'sh -s' : 'sudo -n sh -s'} -- "$HOME" "$PPID" <<'VM_PACKAGE_ROOT'${onFailure}`, root, 'VM_PACKAGE_ROOT', '')
  return lines.join('\n')
}
