# Recipe of the "debian-12" box: a minimal Debian 12 (bookworm) system made
# with mmdebstrap. Sourced by boxes/build.sh; uses boxes/lib/common.sh.

BOX_VERSION=1.0.0
BOX_DESCRIPTION="Debian 12 (bookworm), minimal: systemd, OpenSSH, sudo, rsync"
BOX_VIRTUAL_SIZE_GB=10
BOX_UUID=4f1b7c6e-7a1d-4c55-9e0a-76d1f1a7e012

# shellcheck source=base.sh
. "$BOXES_DIR/debian-12/base.sh"
DEBIAN_PACKAGES=$DEBIAN12_PACKAGES

# The direct boot (kernel and initramfs from the archive) uses a small busybox
# initramfs that only mounts the root filesystem (udev in the Debian
# initramfs costs seconds under emulation); booting from the disk uses
# Debian's own initramfs (initramfs-tools).
MODULES_VIRTIO="virtio_pci virtio_blk"
MODULES_FS="crc32c_intel crc32c_generic ext4"
MODULES_OTHER="virtio_scsi sd_mod"

DEBIAN_CMDLINE="root=UUID=$BOX_UUID ro console=ttyS0,115200 quiet cryptomgr.notests"

box_inputs() {
  # shellcheck disable=SC2046,SC2086
  apt_closure $(apt_required_set) apt $DEBIAN_PACKAGES
  apt_pin_list busybox-static
}

box_build() {
  local out=$1 root="$WORK/rootfs" t kver

  # ---- root filesystem; saved for the boxes made from it before the box's
  # own customization (see base.sh)
  t=$(now)
  VMFILE_BASE_TAR="$WORK/base.tar" debian12_mmdebstrap "$root" \
    --customize-hook="$DEBIAN12_SAVE_HOOK" \
    --customize-hook="$DEBIAN12_DIR/hooks/customize.sh"
  debian12_base_publish "$WORK/base.tar" "${BOX_CACHE_KEY:?}"

  # ---- boot files
  kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//')
  [ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one kernel, found: $kver"
  [ -f "$root/boot/initrd.img-$kver" ] || die "no initramfs for $kver"

  cat >"$root/etc/fstab" <<EOF
# The root filesystem fills the disk; it grows when the disk is made bigger.
UUID=$BOX_UUID	/	ext4	errors=remount-ro,x-systemd.growfs	0	1
EOF
  # Disk boot: extlinux reads /vmlinuz and /initrd.img, the symlinks Debian
  # keeps pointing at the newest kernel, so kernel upgrades keep booting.
  mkdir -p "$root/boot/extlinux"
  cat >"$root/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $DEBIAN_CMDLINE
EOF
  [ -L "$root/vmlinuz" ] && [ -L "$root/initrd.img" ] || die "no /vmlinuz and /initrd.img symlinks"

  # Direct boot: uncompressed kernel (for qboot) and a small initramfs.
  kernel_extract_vmlinux "$root/boot/vmlinuz-$kver" "$out/vmlinux"
  mkdir -p "$WORK/debs" "$WORK/busybox"
  apt_fetch "$WORK/debs" busybox-static
  deb_extract "$WORK"/debs/busybox-static_*.deb "$WORK/busybox"
  modules_lists "$root" "$kver" "$WORK"
  initramfs_build "$root" "$kver" "$WORK/busybox/bin/busybox" "$WORK" "$out/initrd.img"

  # Checks of what the hooks did.
  [ -s "$root/home/vm/.ssh/authorized_keys" ] || die "no authorized_keys for vm"
  [ -z "$(ls "$root"/etc/ssh/ssh_host_* 2>/dev/null)" ] || die "SSH host keys left in the image"
  [ -e "$root/lib/modules/$kver/kernel/fs/9p/9p.ko" ] || die "no 9p module"
  msg "root filesystem: $(du -sh "$root" | cut -f1) (kernel $kver) in $(elapsed "$t") s"

  # ---- disk
  t=$(now)
  disk_image "$root" "$WORK/disk.raw" $((BOX_VIRTUAL_SIZE_GB * 1024)) "$BOX_UUID" root
  rm -rf "$root"
  disk_to_qcow2 "$WORK/disk.raw" "$out/box.img"
  rm -f "$WORK/disk.raw"
  msg "disk image: $(du -h "$out/box.img" | cut -f1) in $(elapsed "$t") s"

  metadata_write "$out" debian-12 "$BOX_VERSION" "$BOX_VIRTUAL_SIZE_GB" vmlinux initrd.img \
    "$DEBIAN_CMDLINE" qboot
}
