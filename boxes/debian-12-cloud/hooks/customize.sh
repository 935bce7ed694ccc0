#!/bin/sh
# mmdebstrap customize hook: runs when all packages are installed. $1 is
# the root directory (with /proc, /sys and /dev mounted). Like Debian's
# genericcloud image: no user, no key, no host keys; cloud-init sets them up.
set -eu
root=$1
here=${VMFILE_RECIPE_DIR:?}
in_root() { chroot "$root" "$@"; }

cp -a "$here/rootfs/." "$root/"
echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
HOSTS

in_root systemctl set-default multi-user.target >/dev/null 2>&1
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer \
  systemd-firstboot.service e2scrub_all.timer e2scrub_reap.service >/dev/null 2>&1

# Each machine gets its own host keys, machine id and cloud-init instance.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root/var/lib/cloud"/*

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
