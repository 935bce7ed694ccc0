# Recipe of the "debian-12-cloud" box: Debian 12 (bookworm) made the way
# Debian's genericcloud image is: cloud-init (NoCloud), cloud-guest-utils
# (growpart), OpenSSH, a kernel booted from the disk; no user, no key. Its
# disk is published bare (box.img) for "vm box add --name NAME FILE.qcow2",
# and as a .box like the others. Sourced by boxes/build.sh.

BOX_VERSION=1.0.0
BOX_DESCRIPTION="Debian 12 (bookworm) cloud image: cloud-init, no user and no key"
BOX_VIRTUAL_SIZE_GB=2
BOX_UUID=8d3c2a51-5b0e-4c2f-a7d4-2f0c9e6b1c33

DEBIAN_PACKAGES="
  systemd systemd-sysv udev dbus
  openssh-server sudo rsync iproute2 procps netbase ca-certificates
  cloud-init cloud-guest-utils fdisk ifupdown isc-dhcp-client
  linux-image-amd64 zstd
"

DEBIAN_CMDLINE="root=UUID=$BOX_UUID ro console=ttyS0,115200 quiet cryptomgr.notests"

box_inputs() {
  # shellcheck disable=SC2046,SC2086
  apt_closure $(apt_required_set) apt usr-is-merged $DEBIAN_PACKAGES
}

box_build() {
  local out=$1 root="$WORK/rootfs" here="$BOXES_DIR/debian-12-cloud" t kver
  local -a sources=()
  mapfile -t sources < <(debian_sources)

  t=$(now)
  msg "mmdebstrap (log: $WORK/mmdebstrap.log)"
  # The merged-usr hook: usr-is-merged alone still pulls in usrmerge and perl.
  VMFILE_RECIPE_DIR=$here \
    mmdebstrap --mode=root --variant=minbase --format=directory \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$(echo $DEBIAN_PACKAGES | tr ' ' ,)" \
    --dpkgopt="$here/dpkg-excludes.cfg" \
    --essential-hook="$here/hooks/essential.sh" \
    --customize-hook="$here/hooks/customize.sh" \
    "$DEBIAN_SUITE" "$root" "${sources[@]}" >"$WORK/mmdebstrap.log" 2>&1 || {
    tail -n 40 "$WORK/mmdebstrap.log" >&2
    die "mmdebstrap failed"
  }
  msg "mmdebstrap done in $(elapsed "$t") s"

  kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//')
  [ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one kernel, found: $kver"
  [ -f "$root/boot/initrd.img-$kver" ] || die "no initramfs for $kver"
  # No x-systemd.growfs: cloud-init's growpart and resizefs grow the root.
  cat >"$root/etc/fstab" <<EOT
UUID=$BOX_UUID	/	ext4	errors=remount-ro	0	1
EOT
  mkdir -p "$root/boot/extlinux"
  cat >"$root/boot/extlinux/extlinux.conf" <<EOT
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $DEBIAN_CMDLINE
EOT
  [ -L "$root/vmlinuz" ] && [ -L "$root/initrd.img" ] || die "no /vmlinuz and /initrd.img symlinks"

  [ ! -e "$root/home/vm" ] || die "a vm user was baked in"
  [ -z "$(ls "$root"/etc/ssh/ssh_host_* 2>/dev/null)" ] || die "SSH host keys left in the image"
  [ -x "$root/usr/bin/cloud-init" ] || die "no cloud-init"
  [ -x "$root/usr/bin/growpart" ] || die "no growpart"
  msg "root filesystem: $(du -sh "$root" | cut -f1) (kernel $kver) in $(elapsed "$t") s"

  t=$(now)
  disk_image "$root" "$WORK/disk.raw" $((BOX_VIRTUAL_SIZE_GB * 1024)) "$BOX_UUID" root
  rm -rf "$root"
  disk_to_qcow2 "$WORK/disk.raw" "$out/box.img"
  rm -f "$WORK/disk.raw"
  msg "disk image: $(du -h "$out/box.img" | cut -f1) in $(elapsed "$t") s"

  # A cloud image: booted from its disk, set up by cloud-init.
  cat >"$out/metadata.json" <<EOT
{
  "provider": "libvirt",
  "format": "qcow2",
  "virtual_size": $BOX_VIRTUAL_SIZE_GB,
  "architecture": "amd64",
  "name": "vmfile/debian-12-cloud",
  "version": "$BOX_VERSION",
  "cloud_init": true
}
EOT
}
