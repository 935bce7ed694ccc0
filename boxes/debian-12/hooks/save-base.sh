#!/bin/sh
# mmdebstrap customize hook of debian-12, run before the box's own one: saves
# the root filesystem as the packages left it to $VMFILE_BASE_TAR (see
# boxes/debian-12/base.sh). $1 is the root directory. It is read through a
# bind mount of its own, which shows the tree without the filesystems mmdebstrap
# mounted in it (/proc, /sys, /dev); the downloaded packages are left out.
set -eu
view=$(mktemp -d "${TMPDIR:-/tmp}/vmfile-base-view.XXXXXX")
mount --bind "$1" "$view"
mount --make-private "$view"
status=0
tar --one-file-system --numeric-owner --xattrs --xattrs-include='*' \
  --exclude='./var/cache/apt/archives/*.deb' -C "$view" -cf "${VMFILE_BASE_TAR:?}" . || status=$?
umount "$view"
rmdir "$view"
exit "$status"
