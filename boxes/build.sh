#!/usr/bin/env bash
# Build the vmfile boxes from Debian packages.
#
#   boxes/build.sh [BOX...]            build these boxes (tiny, debian-12; default: all)
#   boxes/build.sh --stale [BOX...]    print the boxes whose output is missing or was
#                                      built from another recipe (no root, no network)
#
# Environment:
#   VM_BOXES_OUT      output directory    (default: <repo>/boxes/dist)
#   VM_BOXES_CACHE    cache directory     (default: /var/cache/vmfile/boxes)
#   VM_BOXES_MIRROR   Debian mirror       (default: the host's apt source for bookworm)
#   VM_BOXES_SECURITY_MIRROR              (default: the host's apt source for bookworm-security)
#   VM_BOXES_OFFLINE=1  do not refresh the package lists (use the cached ones)
#   VM_BOXES_QCOW2_COMPRESSION  zstd (default) or zlib (for QEMU older than 5.1)
#
# Needs root (loop mount, chroot, file ownership) and the Debian mirror.
# Output: $VM_BOXES_OUT/vmfile/<box>-<version>-amd64.box and <box>.json.
set -euo pipefail
umask 022
export LC_ALL=C

BOXES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_BOXES_OUT=${VM_BOXES_OUT:-$BOXES_DIR/dist}
VM_BOXES_CACHE=${VM_BOXES_CACHE:-/var/cache/vmfile/boxes}
ALL_BOXES="tiny debian-12 debian-12-cloud"

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

# Hash of everything a box is made of: build.sh, the shared helpers, the
# public key and the box's own folder.
# A box made from another box's root filesystem names it in its folder's
# file "base" (debian-12-cloud: debian-12): that folder counts too.
recipe_hash() {
  (
    cd "$BOXES_DIR"
    # shellcheck disable=SC2046
    find build.sh lib keys/vmfile_insecure_key.pub "$1" $(cat "$1/base" 2>/dev/null) -type f -print0 |
      sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-64
}

# The output of a box records the recipe it was built from, in
# $VM_BOXES_OUT/vmfile/.<box>.stamp: "<recipe hash> <box file name>".
stamp_file() { printf '%s/vmfile/.%s.stamp' "$VM_BOXES_OUT" "$1"; }

# Prints each given box whose catalog, archive or stamp is missing in the
# output directory, or whose stamp names another recipe.
stale_boxes() {
  local box hash file
  for box in "$@"; do
    if [ -r "$(stamp_file "$box")" ] && read -r hash file <"$(stamp_file "$box")" &&
      [ "$hash" = "$(recipe_hash "$box")" ] && [ -n "$file" ] &&
      [ -f "$VM_BOXES_OUT/vmfile/$file" ] && [ -f "$VM_BOXES_OUT/vmfile/$box.json" ]; then
      continue
    fi
    echo "$box"
  done
}

# Arguments: box names (each once, in the order given), or all of them.
known_box() { case " $ALL_BOXES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
ONE=
STALE=
TARGETS=
case "${1:-}" in
  # Internal: build one box in this process (started by the main process in
  # a session of its own, so that an interrupt reaches every process of it).
  --one) ONE=${2:?} ;;
  --stale) STALE=1; shift ;;
  -h | --help) usage; exit 0 ;;
esac
if [ -z "$ONE" ]; then
  for arg in "$@"; do
    if [ "$arg" = all ]; then
      TARGETS=$ALL_BOXES
      break
    fi
    known_box "$arg" || { echo "boxes: unknown box '$arg' (known: $ALL_BOXES)" >&2; usage >&2; exit 2; }
    case " $TARGETS " in *" $arg "*) ;; *) TARGETS="${TARGETS:+$TARGETS }$arg" ;; esac
  done
  TARGETS=${TARGETS:-$ALL_BOXES}
fi

if [ -n "$STALE" ]; then
  # shellcheck disable=SC2086
  stale_boxes $TARGETS
  exit 0
fi

# shellcheck source=lib/common.sh
. "$BOXES_DIR/lib/common.sh"

[ "$(id -u)" = 0 ] || die "must run as root (loop mounts, chroot, file ownership)"

missing=""
for tool in apt-get dpkg-deb mmdebstrap mkfs.ext4 e2fsck extlinux qemu-img losetup \
  cpio xz zstd gzip readelf depmod modprobe sha256sum flock; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing="$missing debian-archive-keyring"
[ -z "$missing" ] || die "missing host tools:$missing (install the packages in boxes/host-packages.txt)"

mkdir -p "$VM_BOXES_CACHE/tmp" "$VM_BOXES_OUT/vmfile"
VM_BOXES_CACHE=$(cd "$VM_BOXES_CACHE" && pwd)
VM_BOXES_OUT=$(cd "$VM_BOXES_OUT" && pwd)
export VM_BOXES_CACHE VM_BOXES_OUT VM_BOXES_MIRROR VM_BOXES_SECURITY_MIRROR VM_BOXES_QCOW2_COMPRESSION

if [ -z "$ONE" ]; then
  # One build at a time per cache directory.
  exec 9>"$VM_BOXES_CACHE/.lock"
  if ! flock -n 9; then
    msg "waiting for another build using $VM_BOXES_CACHE"
    flock 9
  fi
  T_ALL=$(now)
  apt_init
  apt_update
else
  apt_init
fi

# Keep the newest few cache entries of a box.
cache_prune() {
  local dir=$1 keep=3
  # shellcheck disable=SC2012
  ls -1t "$dir" 2>/dev/null | tail -n +$((keep + 1)) | while read -r old; do
    case $old in *[!0-9a-f]*) continue ;; esac
    rm -rf "${dir:?}/$old"
  done
}

# cache_key RECIPE_HASH INPUTS: the cache key of a box built from that recipe
# with those resolved package versions, from this mirror.
cache_key() {
  {
    echo "recipe $1"
    echo "mirror $VM_BOXES_MIRROR $VM_BOXES_SECURITY_MIRROR"
    echo "qcow2 $VM_BOXES_QCOW2_COMPRESSION"
    printf '%s\n' "$2"
  } | sha256sum | cut -c1-64
}

# box_cache_key BOX: another box's cache key, as its own build computes it
# (its recipe is read in a subshell).
box_cache_key() {
  (
    BOX_NAME=$1
    # shellcheck source=/dev/null
    . "$BOXES_DIR/$1/recipe.sh"
    inputs=$(box_inputs) && [ -n "$inputs" ] || die "cannot resolve the package versions of $1"
    cache_key "$(recipe_hash "$1")" "$inputs"
  )
}

build_box() {
  BOX_NAME=$1
  local t0 key inputs cdir file sha out rhash
  t0=$(now)
  rhash=$(recipe_hash "$BOX_NAME")
  # shellcheck source=/dev/null
  . "$BOXES_DIR/$BOX_NAME/recipe.sh"
  [ -n "${BOX_VERSION:-}" ] || die "recipe has no BOX_VERSION"
  file="$BOX_NAME-$BOX_VERSION-amd64.box"

  inputs=$(box_inputs) || die "cannot resolve the package versions"
  [ -n "$inputs" ] || die "no package versions resolved"
  key=$(cache_key "$rhash" "$inputs")
  # For recipes that keep something in the cache beside the box (debian-12's root filesystem).
  BOX_CACHE_KEY=$key
  cdir="$VM_BOXES_CACHE/$BOX_NAME/$key"
  msg "version $BOX_VERSION, cache key ${key:0:16} (resolved in $(elapsed "$t0") s)"

  if [ -f "$cdir/$file" ] && [ -f "$cdir/$file.sha256" ]; then
    msg "cached: $cdir/$file"
  else
    local tb
    tb=$(now)
    WORK=$(mktemp -d "$VM_BOXES_CACHE/tmp/$BOX_NAME.XXXXXX")
    on_exit "umount_below '$WORK'; rm -rf '$WORK'"
    mkdir -p "$WORK/box"
    printf '%s\n' "$inputs" >"$WORK/packages.txt"
    box_build "$WORK/box"
    [ -f "$WORK/box/metadata.json" ] && [ -f "$WORK/box/box.img" ] ||
      die "the recipe did not produce metadata.json and box.img"
    msg "packing $file"
    box_pack "$WORK/box" "$WORK/$file"
    sha256sum "$WORK/$file" | cut -c1-64 >"$WORK/$file.sha256"
    # Publish into the cache atomically: a complete entry or nothing.
    mkdir -p "$WORK/entry"
    mv "$WORK/$file" "$WORK/$file.sha256" "$WORK/entry/"
    cp "$WORK/box/metadata.json" "$WORK/entry/metadata.json"
    cp "$WORK/packages.txt" "$WORK/entry/packages.txt"
    mkdir -p "$VM_BOXES_CACHE/$BOX_NAME"
    rm -rf "$cdir"
    mv "$WORK/entry" "$cdir"
    touch "$cdir"
    cache_prune "$VM_BOXES_CACHE/$BOX_NAME"
    msg "built in $(elapsed "$tb") s"
  fi

  # Publish into the output directory: temporary name, then rename.
  out="$VM_BOXES_OUT/vmfile"
  if ! [ "$cdir/$file" -ef "$out/$file" ]; then
    rm -f "$out/.$file.tmp"
    on_exit "rm -f '$out/.$file.tmp'"
    ln "$cdir/$file" "$out/.$file.tmp" 2>/dev/null || cp "$cdir/$file" "$out/.$file.tmp"
    mv -f "$out/.$file.tmp" "$out/$file"
  fi
  sha=$(cat "$cdir/$file.sha256")
  on_exit "rm -f '$out/.$BOX_NAME.json.tmp'"
  catalog_write "$out/.$BOX_NAME.json.tmp" "vmfile/$BOX_NAME" "$BOX_DESCRIPTION" \
    "$BOX_VERSION" "$file" "$sha"
  mv -f "$out/.$BOX_NAME.json.tmp" "$out/$BOX_NAME.json"
  # Last: the stamp saying which recipe the published box comes from.
  on_exit "rm -f '$out/.$BOX_NAME.stamp.tmp'"
  printf '%s %s\n' "$rhash" "$file" >"$out/.$BOX_NAME.stamp.tmp"
  mv -f "$out/.$BOX_NAME.stamp.tmp" "$(stamp_file "$BOX_NAME")"
  msg "$out/$file ($(du -h "$out/$file" | cut -f1), sha256 ${sha:0:16}...) in $(elapsed "$t0") s"
}

if [ -n "$ONE" ]; then
  build_box "$ONE"
  exit 0
fi

# Each box is built by a process in a session of its own; on an interrupt,
# the whole session is signalled and its cleanup awaited.
BUILD_PID=
stop_build() {
  if [ -n "$BUILD_PID" ]; then
    kill -TERM -- "-$BUILD_PID" 2>/dev/null || kill -TERM "$BUILD_PID" 2>/dev/null || true
    wait "$BUILD_PID" 2>/dev/null || true
  fi
  exit "$1"
}
trap 'stop_build 130' INT
trap 'stop_build 143' TERM

for box in $TARGETS; do
  setsid "$BASH" "${BASH_SOURCE[0]}" --one "$box" &
  BUILD_PID=$!
  if ! wait "$BUILD_PID"; then
    BUILD_PID=
    die "building $box failed"
  fi
  BUILD_PID=
done
msg "done in $(elapsed "$T_ALL") s"
