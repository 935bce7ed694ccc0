# Recipe of the "tiny" box: Debian kernel, busybox, dropbear, sudo, rsync,
# assembled from Debian packages without a package manager in the image.
# Sourced by boxes/build.sh; uses boxes/lib/common.sh.

BOX_VERSION=1.0.0
BOX_DESCRIPTION="Tiny Linux (Debian 12 kernel, busybox, dropbear, sudo, rsync) for fast-booting VMs"
BOX_VIRTUAL_SIZE_GB=2
BOX_UUID=4f1b7c6e-7a1d-4c55-9e0a-76d1f1a7e001

# Packages unpacked into the image (their shared libraries are checked:
# a missing library fails the build).
TINY_PACKAGES="
  linux-image-amd64
  busybox-static
  dropbear-bin
  sudo
  rsync
  e2fsprogs
  libc6 libcrypt1 zlib1g libtomcrypt1 libtommath1 libgmp10
  libaudit1 libcap-ng0 libselinux1 libpcre2-8-0 libpam0g libpam-modules
  libacl1 liblz4-1 libpopt0 libssl3 libxxhash0 libzstd1
  libext2fs2 libcom-err2 libblkid1 libuuid1
"

# Kernel modules loaded by the initramfs (with their dependencies), in three
# groups: "virtio" first, "fs" and "other" in parallel with it.
MODULES_VIRTIO="virtio_pci virtio_blk"
MODULES_FS="crc32c_intel crc32c_generic ext4"
MODULES_OTHER="virtio_net virtio_rng virtio_console netfs 9pnet_virtio 9p e1000 button evdev"
# Further modules available on the disk (modprobe) but not loaded at boot.
MODULES_EXTRA="loop overlay fuse virtiofs isofs vfat nls_utf8 nls_cp437 vsock vmw_vsock_virtio_transport virtio_scsi sd_mod"

TINY_CMDLINE="root=UUID=$BOX_UUID rw console=ttyS0,115200 quiet cryptomgr.notests"

# linux-image-amd64 is a metapackage; add the kernel it points to.
tiny_package_names() {
  local kpkg
  kpkg=$(apt_cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64"
  echo $TINY_PACKAGES "$kpkg"
}

box_inputs() {
  # shellcheck disable=SC2046
  apt_pin_list $(tiny_package_names)
}

box_build() {
  local out=$1 debs="$WORK/debs" root="$WORK/rootfs" kroot="$WORK/kernel"
  local here="$BOXES_DIR/tiny" t deb kver a
  mkdir -p "$debs" "$kroot"

  t=$(now)
  # shellcheck disable=SC2046
  apt_fetch "$debs" $(tiny_package_names)
  msg "downloaded $(ls "$debs" | wc -l) packages in $(elapsed "$t") s"

  # ---- root filesystem
  t=$(now)
  rootfs_skeleton "$root"
  for deb in "$debs"/*.deb; do
    case ${deb##*/} in
      linux-image-*) deb_extract "$deb" "$kroot" ;;
      e2fsprogs_*) mkdir -p "$WORK/e2fs" && deb_extract "$deb" "$WORK/e2fs" ;;
      *) deb_extract "$deb" "$root" ;;
    esac
  done

  # Only what the box uses from some packages.
  rm -rf "$root"/etc/init.d/* "$root"/etc/rc?.d "$root"/etc/cron.* "$root"/etc/logrotate.d \
    "$root"/usr/lib/tmpfiles.d "$root"/usr/lib/systemd "$root"/etc/sudo_logsrvd.conf \
    "$root"/usr/sbin/sudo_logsrvd "$root"/usr/sbin/sudo_sendlog "$root"/usr/bin/cvtsudoers \
    "$root"/usr/bin/sudoreplay "$root"/usr/lib/x86_64-linux-gnu/gconv \
    "$root"/usr/share/zoneinfo "$root"/usr/share/i18n "$root"/etc/pam.d/*
  # PAM modules: only pam_permit and pam_deny (see etc/pam.d/sudo).
  find "$root"/usr/lib/x86_64-linux-gnu/security -type f ! -name pam_permit.so ! -name pam_deny.so -delete
  # From e2fsprogs only the filesystem check, creation and resizing tools.
  for a in e2fsck mke2fs resize2fs; do
    cp -a "$WORK/e2fs/sbin/$a" "$root/usr/sbin/$a"
  done
  ln -sfn mke2fs "$root/usr/sbin/mkfs.ext4"
  ln -sfn e2fsck "$root/usr/sbin/fsck.ext4"
  cp -a "$WORK/e2fs/etc/mke2fs.conf" "$root/etc/mke2fs.conf"
  rootfs_strip_docs "$root"

  # busybox applets, without replacing real programs.
  for a in $("$root"/bin/busybox --list-full); do
    case ${a##*/} in dpkg | dpkg-deb | rpm | rpm2cpio | linuxrc | busybox) continue ;; esac
    [ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s /usr/bin/busybox "$root/$a"
  done

  # Our configuration files.
  cp -a "$here/rootfs/." "$root/"
  chmod 0755 "$root"/etc/init.d/* "$root"/etc/acpi/* "$root"/usr/share/udhcpc/default.script
  chmod 0440 "$root"/etc/sudoers.d/vm
  ln -sfn /run/resolv.conf "$root/etc/resolv.conf"
  cat >"$root/etc/os-release" <<EOF
PRETTY_NAME="vmfile tiny $BOX_VERSION"
NAME="vmfile tiny"
ID=vmfile-tiny
VERSION_ID="$BOX_VERSION"
VERSION="$BOX_VERSION"
EOF
  ln -sfn ../etc/os-release "$root/usr/lib/os-release"

  # Users: root (no password) and vm (no password, SSH key, sudo).
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
vm:x:1000:1000:vm:/home/vm:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
tty:x:5:
disk:x:6:
wheel:x:10:vm
shadow:x:42:
utmp:x:43:
sudo:x:27:vm
users:x:100:vm
vm:x:1000:
nogroup:x:65534:
EOF
  cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
vm:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
  chmod 0640 "$root/etc/shadow"
  chgrp 42 "$root/etc/shadow"
  mkdir -p "$root/home/vm/.ssh" "$root/etc/dropbear" "$root/var/lib/sudo" "$root/usr/local/bin"
  install -m 0600 "$BOXES_DIR/keys/vmfile_insecure_key.pub" "$root/home/vm/.ssh/authorized_keys"
  chmod 0700 "$root/home/vm/.ssh" "$root/var/lib/sudo"
  chmod 0755 "$root/home/vm"
  chown -R 1000:1000 "$root/home/vm"
  touch "$root/var/log/wtmp" "$root/var/log/lastlog"
  [ -u "$root/usr/bin/sudo" ] || die "sudo lost its setuid bit"

  # ---- kernel, modules, initramfs
  kver=$(ls "$kroot/lib/modules")
  [ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one kernel, found: $kver"
  modules_lists "$kroot" "$kver" "$WORK"
  modules_install "$kroot" "$kver" "$root" "$WORK/modules.all"
  cp "$kroot/boot/vmlinuz-$kver" "$root/boot/vmlinuz-$kver"
  cp "$kroot/boot/config-$kver" "$root/boot/config-$kver"
  ln -sfn "vmlinuz-$kver" "$root/boot/vmlinuz"
  kernel_extract_vmlinux "$kroot/boot/vmlinuz-$kver" "$out/vmlinux"
  initramfs_build "$kroot" "$kver" "$root/usr/bin/busybox" "$WORK" "$out/initrd.img"
  cp "$out/initrd.img" "$root/boot/initrd.img-$kver"
  ln -sfn "initrd.img-$kver" "$root/boot/initrd.img"

  # ---- bootloader configuration (disk boot)
  mkdir -p "$root/boot/extlinux"
  cat >"$root/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND $TINY_CMDLINE
EOF

  ldconfig -r "$root"
  elf_check_deps "$root"
  msg "root filesystem: $(du -sh "$root" | cut -f1) (kernel $kver) in $(elapsed "$t") s"

  # ---- disk
  t=$(now)
  disk_image "$root" "$WORK/disk.raw" $((BOX_VIRTUAL_SIZE_GB * 1024)) "$BOX_UUID" root
  disk_to_qcow2 "$WORK/disk.raw" "$out/box.img"
  rm -f "$WORK/disk.raw"
  msg "disk image: $(du -h "$out/box.img" | cut -f1) in $(elapsed "$t") s"

  metadata_write "$out" tiny "$BOX_VERSION" "$BOX_VIRTUAL_SIZE_GB" vmlinux initrd.img \
    "$TINY_CMDLINE" qboot
}
