# The debian-12 root filesystem as its packages leave it, shared by the boxes
# made from it (debian-12-cloud names it in its file "base"). Sourced by the
# recipes; uses boxes/lib/common.sh.
#
# debian-12's own mmdebstrap run saves it, before the box's customization, into
# the cache: $VM_BOXES_CACHE/debian-12-base/<debian-12's cache key>/rootfs.tar,
# so that a box made from it does not repeat the install of the same packages.
# The saved tree is the one mmdebstrap's customize hooks see: package lists,
# policy-rc.d, the start-stop-daemon stand-in and 00mmdebstrap are still there
# (debian12_finish_like_mmdebstrap removes them); the downloaded .debs are not.

DEBIAN12_DIR="$BOXES_DIR/debian-12"
# dpkg's settings for the build only (see debian12_mmdebstrap).
DEBIAN12_BUILD_DPKG_CFG=etc/dpkg/dpkg.cfg.d/zz-vmfile-build

# On top of the minbase variant (Essential and Priority: required packages).
DEBIAN12_PACKAGES="
  usr-is-merged
  systemd systemd-sysv systemd-resolved udev dbus
  openssh-server sudo rsync iproute2 procps netbase ca-certificates
  linux-image-amd64 zstd
"

# debian12_mmdebstrap ROOT [MMDEBSTRAP OPTION...]: debian-12's packages into
# ROOT (a new directory), with its dpkg excludes and initramfs settings; the
# options add hooks. The output goes to $WORK/mmdebstrap.log.
#
# While it builds, dpkg runs with force-unsafe-io (no fsync of every unpacked
# file: ~2 ms each on these disks, tens of seconds for a Debian system; the
# files are the same). The setting is a file of the build's own, removed by
# the first customize hook, so neither the saved tree nor the box keeps it.
debian12_mmdebstrap() {
  local root=$1 t
  shift
  local -a sources=()
  mapfile -t sources < <(debian_sources)
  t=$(now)
  msg "mmdebstrap (log: $WORK/mmdebstrap.log)"
  # shellcheck disable=SC2086
  VMFILE_RECIPE_DIR=$DEBIAN12_DIR VMFILE_KEYS_DIR="$BOXES_DIR/keys" \
    mmdebstrap --mode=root --variant=minbase --format=directory \
    --include="$(echo $DEBIAN12_PACKAGES | tr ' ' ,)" \
    --dpkgopt="$DEBIAN12_DIR/dpkg-excludes.cfg" \
    --essential-hook="$DEBIAN12_DIR/hooks/essential.sh" \
    --setup-hook="mkdir -p \"\$1/etc/dpkg/dpkg.cfg.d\" && echo force-unsafe-io >\"\$1/$DEBIAN12_BUILD_DPKG_CFG\"" \
    --customize-hook="rm -f \"\$1/$DEBIAN12_BUILD_DPKG_CFG\"" \
    "$@" \
    "$DEBIAN_SUITE" "$root" "${sources[@]}" >"$WORK/mmdebstrap.log" 2>&1 || {
    tail -n 40 "$WORK/mmdebstrap.log" >&2
    die "mmdebstrap failed"
  }
  msg "mmdebstrap done in $(elapsed "$t") s"
}

# The customize hook that saves the tree (see above) to $VMFILE_BASE_TAR.
DEBIAN12_SAVE_HOOK="$DEBIAN12_DIR/hooks/save-base.sh"

debian12_base_file() { printf '%s/debian-12-base/%s/rootfs.tar' "$VM_BOXES_CACHE" "$1"; }

# debian12_base_publish TAR KEY: moves a saved tree into the cache (a rename:
# complete or absent), keeping the newest few.
debian12_base_publish() {
  local tar=$1 dest
  dest=$(debian12_base_file "$2")
  mkdir -p "$(dirname "$dest")"
  mv -f "$tar" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  touch "$(dirname "$dest")"
  cache_prune "$VM_BOXES_CACHE/debian-12-base"
}

# debian12_base_rootfs ROOT: unpacks debian-12's saved tree into ROOT (a new
# directory); made now (one mmdebstrap run) when the cache has none for
# debian-12's current cache key.
debian12_base_rootfs() {
  local root=$1 key base t
  key=$(box_cache_key debian-12) || die "cannot compute debian-12's cache key"
  base=$(debian12_base_file "$key")
  if [ -f "$base" ]; then
    msg "debian-12's root filesystem from the cache (${key:0:16})"
  else
    msg "no debian-12 root filesystem in the cache for ${key:0:16}: making it"
    VMFILE_BASE_TAR="$WORK/base.tar" debian12_mmdebstrap "$WORK/base-root" --customize-hook="$DEBIAN12_SAVE_HOOK"
    rm -rf "$WORK/base-root"
    debian12_base_publish "$WORK/base.tar" "$key"
  fi
  t=$(now)
  mkdir -p "$root"
  tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$base" -C "$root" || die "cannot unpack $base"
  msg "unpacked debian-12's root filesystem in $(elapsed "$t") s"
}

# chroot_mount ROOT: /proc, /sys and /dev in ROOT for package scripts run in
# it (unmounted on exit, or by chroot_umount).
chroot_mount() {
  local root=$1
  on_exit "umount_below '$root'"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --make-private "$root/dev"
}
chroot_umount() { umount_below "$1"; }

# debian12_finish_like_mmdebstrap ROOT: what mmdebstrap does after its
# customize hooks, for a tree unpacked from the saved one: the real
# start-stop-daemon back, no policy-rc.d, no 00mmdebstrap, no package lists or
# caches, and its reproducibility cleanup.
debian12_finish_like_mmdebstrap() {
  local root=$1
  if [ -e "$root/sbin/start-stop-daemon.REAL" ]; then
    mv -f "$root/sbin/start-stop-daemon.REAL" "$root/sbin/start-stop-daemon"
  fi
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/apt/apt.conf.d/00mmdebstrap"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -f "$root"/var/log/dpkg.log "$root"/var/log/apt/history.log "$root"/var/log/apt/term.log \
    "$root"/var/log/alternatives.log "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/apt/eipp.log.xz \
    "$root"/var/lib/dbus/machine-id
  if [ -e "$root/etc/machine-id" ]; then
    rm -f "$root/etc/machine-id"
    : >"$root/etc/machine-id"
  fi
  # Everything in /run but /run/lock, and everything in /tmp.
  find "$root/run" "$root/tmp" -mindepth 1 -maxdepth 1 ! -path "$root/run/lock" -exec rm -rf --one-file-system {} +
}
