#!/bin/sh
# mmdebstrap customize hook: runs when all packages are installed. $1 is
# the root directory (with /proc, /sys and /dev mounted).
set -eu
root=$1
here=${VMFILE_RECIPE_DIR:?}
keys=${VMFILE_KEYS_DIR:?}
in_root() { chroot "$root" "$@"; }

# Our configuration files.
cp -a "$here/rootfs/." "$root/"
chmod 0440 "$root/etc/sudoers.d/vm"

echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	debian
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
HOSTS

# The login user: no password, the insecure key, passwordless sudo.
in_root useradd --create-home --uid 1000 --user-group --groups sudo --shell /bin/bash vm
in_root usermod --password '*' vm
install -d -m 0700 -o 1000 -g 1000 "$root/home/vm/.ssh"
install -m 0600 -o 1000 -g 1000 "$keys/vmfile_insecure_key.pub" "$root/home/vm/.ssh/authorized_keys"

# Services: network, name resolution, SSH host keys on first boot.
in_root systemctl enable systemd-networkd.service systemd-resolved.service \
  vmfile-ssh-host-keys.service vmfile-ssh-host-key-rsa.service >/dev/null 2>&1
in_root systemctl set-default multi-user.target >/dev/null 2>&1
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# No background package updates holding the dpkg lock, no first-boot
# prompts, no filesystem scrubbing (there are no LVM snapshots).
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer \
  systemd-firstboot.service e2scrub_all.timer e2scrub_reap.service >/dev/null 2>&1

# Each machine gets its own host keys and machine id on first boot.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# Nothing left over from the build.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
