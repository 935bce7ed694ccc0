# Recipe of the "debian-12-cloud" box: Debian 12 (bookworm) made the way
# Debian's genericcloud image is: cloud-init (NoCloud), cloud-guest-utils
# (growpart), OpenSSH, a kernel booted from the disk; no user, no key. Its
# disk is published bare (box.img) for "vm box add --name NAME FILE.qcow2",
# and as a .box like the others. Sourced by boxes/build.sh.
#
# Made from debian-12's root filesystem as its packages leave it (before
# debian-12's own user, key and services; see debian-12/base.sh, and the file
# "base" here): the cloud packages are added to it and systemd-resolved is
# removed, so the packages both boxes share are installed once per build.

BOX_VERSION=1.0.0
BOX_DESCRIPTION="Debian 12 (bookworm) cloud image: cloud-init, no user and no key"
BOX_VIRTUAL_SIZE_GB=2
BOX_UUID=8d3c2a51-5b0e-4c2f-a7d4-2f0c9e6b1c33

# shellcheck source=../debian-12/base.sh
. "$BOXES_DIR/debian-12/base.sh"
# Added to debian-12's packages; systemd-resolved is removed (cloud-init 22.4
# renders ifupdown's configuration, and dhclient writes /etc/resolv.conf).
CLOUD_PACKAGES="cloud-init cloud-guest-utils fdisk ifupdown isc-dhcp-client"
CLOUD_REMOVED="systemd-resolved"

DEBIAN_CMDLINE="root=UUID=$BOX_UUID ro console=ttyS0,115200 quiet cryptomgr.notests"

box_inputs() {
  # The packages of the box (debian-12's, minus the removed one, plus the
  # cloud ones) with their versions.
  # shellcheck disable=SC2046,SC2086
  apt_closure $(apt_required_set) apt $DEBIAN12_PACKAGES $CLOUD_PACKAGES | awk -v removed=" $CLOUD_REMOVED " 'index(removed, " " $1 " ") == 0'
}

box_build() {
  local out=$1 root="$WORK/rootfs" here="$BOXES_DIR/debian-12-cloud" t kver
  t=$(now)
  debian12_base_rootfs "$root"

  # The cloud packages: downloaded here with the build's own apt (the lists of
  # this build, the state of the tree), installed in the tree without network,
  # with dpkg's force-unsafe-io as debian-12's own packages (see base.sh).
  msg "adding $CLOUD_PACKAGES; removing $CLOUD_REMOVED (log: $WORK/apt.log)"
  # shellcheck disable=SC2086
  apt_box -o Dir::State::status="$root/var/lib/dpkg/status" \
    -o Dir::Cache::archives="$root/var/cache/apt/archives" \
    install --download-only -y -qq $CLOUD_PACKAGES >"$WORK/apt.log" 2>&1 || {
    tail -n 40 "$WORK/apt.log" >&2
    die "cannot download the cloud packages"
  }
  # The same package lists inside, so that apt there picks the downloaded versions.
  find "$APT_ROOT/lists" -maxdepth 1 -type f ! -name lock -exec cp -t "$root/var/lib/apt/lists/" {} +
  chroot_mount "$root"
  # shellcheck disable=SC2086
  {
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-download \
      --no-install-recommends -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io $CLOUD_PACKAGES &&
      chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o Dpkg::Use-Pty=0 \
        -o Dpkg::Options::=--force-unsafe-io $CLOUD_REMOVED
  } >>"$WORK/apt.log" 2>&1 || {
    tail -n 40 "$WORK/apt.log" >&2
    die "installing the cloud packages failed"
  }
  # What mmdebstrap leaves in a tree: a copy of the build host's resolv.conf
  # (dhclient replaces it at the first lease); systemd-resolved's link is gone.
  rm -f "$root/etc/resolv.conf"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  VMFILE_RECIPE_DIR=$here "$here/hooks/customize.sh" "$root"
  chroot_umount "$root"
  debian12_finish_like_mmdebstrap "$root"
  msg "cloud packages in $(elapsed "$t") s"

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
