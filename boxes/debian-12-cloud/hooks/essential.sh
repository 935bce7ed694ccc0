#!/bin/sh
# mmdebstrap essential hook: runs after the essential packages are in
# place, before the kernel is installed. $1 is the root directory.
set -eu
root=$1
here=${VMFILE_RECIPE_DIR:?}
# Small initramfs with the disk modules only.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
cp "$here/initramfs/vmfile.conf" "$root/etc/initramfs-tools/conf.d/vmfile.conf"
cp "$here/initramfs/modules" "$root/usr/share/initramfs-tools/modules.d/vmfile.conf"
