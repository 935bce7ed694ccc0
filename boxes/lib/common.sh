# Shared helpers for the box recipes. Sourced by boxes/build.sh (bash).
#
# Conventions:
#   BOXES_DIR   the boxes/ folder of the repository
#   BOX_NAME    name of the box being built (set by build.sh)
#   APT_ROOT    private apt state (lists, config) under the cache directory
#   WORK        the per-build temporary directory (removed on exit)

# ---------------------------------------------------------------- messages

msg() { printf '[%s] %s\n' "${BOX_NAME:-boxes}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${BOX_NAME:-boxes}" "$*" >&2; exit 1; }

# Seconds since the epoch with millisecond precision.
now() { date +%s.%N | cut -c1-14; }
# elapsed START -> "12.3"
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# ---------------------------------------------------------------- cleanup
#
# Cleanup actions run in reverse order of registration when the shell exits,
# whether the build succeeded or failed. Each action is a shell snippet.

_CLEANUP=()
on_exit() { _CLEANUP+=("$1"); }
_run_cleanup() {
  local i
  for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${_CLEANUP[$i]}" >/dev/null 2>&1 || true
  done
  _CLEANUP=()
}
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Unmount everything below a directory (deepest first); used by cleanups.
umount_below() {
  local dir m
  dir=$(realpath -m "$1")
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# ---------------------------------------------------------------- apt
#
# A private apt configuration (own sources, lists and empty dpkg status), so
# that what goes into a box depends only on the recipe and the mirror, never
# on the host's apt configuration or installed packages.

DEBIAN_SUITE=bookworm

# The mirror this host's apt already uses for a suite (deb822 .sources or sources.list).
host_mirror() {
  local suite=$1 uri=''
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk -v want="$suite" '
      /^[[:space:]]*$/ { u = "" }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want && u != "") { print u; exit } }
    ' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk -v want="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i + 1) == want) { print $i; exit } break } }' /etc/apt/sources.list)
  fi
  printf '%s' "$uri"
}

VM_BOXES_MIRROR=${VM_BOXES_MIRROR:-$(host_mirror "$DEBIAN_SUITE")}
VM_BOXES_SECURITY_MIRROR=${VM_BOXES_SECURITY_MIRROR:-$(host_mirror "$DEBIAN_SUITE-security")}
if [ -z "$VM_BOXES_MIRROR" ] || [ -z "$VM_BOXES_SECURITY_MIRROR" ]; then
  echo "boxes: cannot find the Debian $DEBIAN_SUITE mirrors in this host's apt sources; set VM_BOXES_MIRROR and VM_BOXES_SECURITY_MIRROR" >&2
  exit 1
fi
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The sources of the boxes, one-line style (also written into debian-12).
debian_sources() {
  echo "deb [signed-by=$DEBIAN_KEYRING] $VM_BOXES_MIRROR $DEBIAN_SUITE main"
  echo "deb [signed-by=$DEBIAN_KEYRING] $VM_BOXES_MIRROR $DEBIAN_SUITE-updates main"
  echo "deb [signed-by=$DEBIAN_KEYRING] $VM_BOXES_SECURITY_MIRROR $DEBIAN_SUITE-security main"
}

apt_init() {
  APT_ROOT="$VM_BOXES_CACHE/apt"
  mkdir -p "$APT_ROOT"/etc/apt.conf.d "$APT_ROOT"/etc/preferences.d \
    "$APT_ROOT"/etc/sources.list.d "$APT_ROOT"/lists/partial \
    "$APT_ROOT"/archives/partial "$APT_ROOT"/dpkg
  : >"$APT_ROOT/dpkg/status"
  debian_sources >"$APT_ROOT/etc/sources.list"
  cat >"$APT_ROOT/apt.conf" <<EOF
Dir::Etc "$APT_ROOT/etc";
Dir::Etc::main "/dev/null";
Dir::Etc::Parts "$APT_ROOT/etc/apt.conf.d";
Dir::Etc::SourceList "$APT_ROOT/etc/sources.list";
Dir::Etc::SourceParts "$APT_ROOT/etc/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$APT_ROOT/etc/preferences.d";
Dir::State "$APT_ROOT";
Dir::State::Lists "$APT_ROOT/lists";
Dir::State::status "$APT_ROOT/dpkg/status";
Dir::Cache "$APT_ROOT";
Dir::Cache::archives "$APT_ROOT/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Debug::NoLocking "true";
EOF
}

apt_box() { APT_CONFIG="$APT_ROOT/apt.conf" apt-get -q "$@"; }
apt_cache() { APT_CONFIG="$APT_ROOT/apt.conf" apt-cache "$@"; }

apt_update() {
  local t0
  t0=$(now)
  if [ "${VM_BOXES_OFFLINE:-0}" = 1 ] && [ -n "$(ls "$APT_ROOT/lists" 2>/dev/null | grep -v partial)" ]; then
    msg "offline: using existing package lists"
    return 0
  fi
  # --error-on=any: without it apt-get update succeeds when no mirror answers, and the
  # build fails later with a confusing message.
  if ! apt_box update -qq --error-on=any >/dev/null 2>"$APT_ROOT/update.log"; then
    sed 's/^/  /' "$APT_ROOT/update.log" >&2
    # Lists from an earlier update of the same sources still allow a build from the cache.
    apt_cache show --no-all-versions apt >/dev/null 2>&1 ||
      die "cannot download the package lists (see above): is the Debian mirror $VM_BOXES_MIRROR (and $VM_BOXES_SECURITY_MIRROR) reachable? Set VM_BOXES_MIRROR and VM_BOXES_SECURITY_MIRROR to mirrors that are"
    msg "warning: cannot refresh the package lists (see above); using the ones of an earlier update"
    return 0
  fi
  msg "package lists updated in $(elapsed "$t0") s"
}

# Exact versions, file names and SHA256 of the given packages (no download).
apt_pin_list() {
  apt_box download --print-uris "$@" | awk '{ print $2, $4 }' | sort
}

# Download the given packages (exact same as apt_pin_list) into a directory.
apt_fetch() {
  local dir=$1
  shift
  (cd "$dir" && apt_box download -qq "$@" >/dev/null)
}

# Full set of packages (name version) apt would install into an empty system
# for the given package names; used as a cache key for mmdebstrap builds.
apt_closure() {
  apt_box install -s -qq "$@" 2>/dev/null | awk '$1 == "Inst" { print $2, $3 }' | tr -d '()' | sort
}

# Names of the Essential/Priority:required packages, i.e. what a minbase
# bootstrap contains besides apt.
apt_required_set() {
  local f
  for f in "$APT_ROOT"/lists/*_"$DEBIAN_SUITE"_main_binary-amd64_Packages; do
    awk '
      /^Package:/ { p = $2; ess = 0; req = 0 }
      /^Essential: yes/ { ess = 1 }
      /^Priority: required/ { req = 1 }
      /^$/ { if (p != "" && (ess || req)) print p; p = "" }
      END { if (p != "" && (ess || req)) print p }' "$f"
  done | sort -u
}

# ---------------------------------------------------------------- packages

# Extract a .deb into a root directory whose /bin, /sbin, /lib* are already
# symlinks into /usr (merged /usr): keep those symlinks.
deb_extract() {
  dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"
}

# Create the skeleton of a merged-/usr root directory.
rootfs_skeleton() {
  local r=$1 d
  mkdir -p "$r"/usr/bin "$r"/usr/sbin "$r"/usr/lib "$r"/usr/lib64
  for d in bin sbin lib lib64; do ln -sfn "usr/$d" "$r/$d"; done
  mkdir -p "$r"/dev "$r"/proc "$r"/sys "$r"/run "$r"/tmp "$r"/root "$r"/home \
    "$r"/etc "$r"/var/log "$r"/var/tmp "$r"/mnt "$r"/boot
  chmod 1777 "$r"/tmp "$r"/var/tmp
  chmod 0700 "$r"/root
  ln -sfn ../run "$r"/var/run
}

# Remove documentation, manual pages and translations from a root directory.
rootfs_strip_docs() {
  local r=$1
  rm -rf "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/info \
    "$r"/usr/share/locale "$r"/usr/share/lintian "$r"/usr/share/bug \
    "$r"/usr/share/bash-completion "$r"/usr/include
}

# Fail if a dynamically linked program or library in the root directory
# needs a shared library that is not there. Uses the root's own loader.
elf_check_deps() {
  local r=$1 f missing=0 out
  [ -x "$r/lib64/ld-linux-x86-64.so.2" ] || die "no dynamic loader in $r"
  while IFS= read -r -d '' f; do
    [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    # Static programs and non-dynamic objects: nothing to check.
    LC_ALL=C readelf -d "$f" 2>/dev/null | grep -q NEEDED || continue
    out=$(chroot "$r" /lib64/ld-linux-x86-64.so.2 --list "/${f#"$r"/}" 2>&1 || true)
    if printf '%s\n' "$out" | grep -q 'not found'; then
      printf '%s\n' "$out" | grep 'not found' | sed "s|^|  ${f#"$r"} needs|" >&2
      missing=1
    fi
  done < <(find "$r"/usr -type f \( -perm -u+x -o -name '*.so*' \) -print0)
  [ "$missing" = 0 ] || die "missing shared libraries (see above)"
}

# ---------------------------------------------------------------- kernel

# Extract the uncompressed ELF vmlinux from a bzImage. The payload location
# comes from the boot protocol header; the compression from its magic.
kernel_extract_vmlinux() {
  local bz=$1 out=$2 setup_sects payload_off payload_len start magic dec size
  setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
  [ "$setup_sects" = 0 ] && setup_sects=4
  payload_off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
  payload_len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
  start=$(((setup_sects + 1) * 512 + payload_off))
  magic=$(od -An -tx1 -j "$start" -N6 "$bz" | tr -d ' ')
  case $magic in
    fd377a585a00) dec="xz -dc" ;;
    1f8b*) dec="gzip -dc" ;;
    28b52ffd*) dec="zstd -dcq" ;;
    *) die "unknown kernel payload compression (magic $magic)" ;;
  esac
  # The payload ends with the 4-byte uncompressed size.
  size=$(od -An -tu4 -j $((start + payload_len - 4)) -N4 "$bz" | tr -d ' ')
  dd if="$bz" bs=1M iflag=skip_bytes,count_bytes skip="$start" count=$((payload_len - 4)) \
    status=none | $dec >"$out" || die "cannot decompress the kernel"
  [ "$(stat -c %s "$out")" = "$size" ] || die "extracted kernel has the wrong size"
  [ "$(od -An -c -N4 "$out" | tr -d ' ')" = '177ELF' ] || die "extracted kernel is not an ELF file"
}

# ---------------------------------------------------------------- modules

# modules_lists KROOT KVER DIR: ordered module lists (paths below
# lib/modules/KVER, dependencies first) DIR/modules.{virtio,fs,other,extra}
# for the modules named in $MODULES_VIRTIO, $MODULES_FS, $MODULES_OTHER and
# $MODULES_EXTRA; each list leaves out the modules of the lists before it.
# DIR/modules.all is all of them.
modules_lists() {
  local kroot=$1 kver=$2 dir=$3 g m list
  [ -f "$kroot/lib/modules/$kver/modules.dep" ] || depmod -b "$kroot" "$kver"
  : >"$dir/modules.all"
  for g in virtio fs other extra; do
    case $g in
      virtio) list=${MODULES_VIRTIO:-} ;;
      fs) list=${MODULES_FS:-} ;;
      other) list=${MODULES_OTHER:-} ;;
      extra) list=${MODULES_EXTRA:-} ;;
    esac
    for m in $list; do
      modprobe -d "$kroot" -S "$kver" --show-depends "$m" || die "no module $m"
    done | awk '$1 == "insmod" { print $2 }' | sed "s|^$kroot/lib/modules/$kver/||" |
      awk -v seen="$dir/modules.all" 'BEGIN { while ((getline l < seen) > 0) s[l] = 1 } !s[$0]++' \
        >"$dir/modules.$g"
    cat "$dir/modules.$g" >>"$dir/modules.all"
  done
  if grep -q virtio "$dir/modules.fs"; then die "the fs modules depend on virtio modules"; fi
}

# modules_install KROOT KVER DEST LIST: copy the modules in the file LIST
# (from modules_lists) to DEST/lib/modules/KVER and index them.
modules_install() {
  local kroot=$1 kver=$2 dest=$3 list=$4
  mkdir -p "$dest/lib/modules/$kver"
  (cd "$kroot/lib/modules/$kver" && cpio -pdm --quiet "$dest/lib/modules/$kver" <"$list")
  cp "$kroot/lib/modules/$kver"/modules.builtin* "$kroot/lib/modules/$kver/modules.order" \
    "$dest/lib/modules/$kver/"
  depmod -b "$dest" "$kver"
}

# initramfs_build KROOT KVER BUSYBOX LISTS_DIR OUT: a small uncompressed
# initramfs (faster to unpack under emulation than a compressed one): static
# busybox, lib/initramfs-init and the modules of the virtio, fs and other
# lists.
initramfs_build() {
  local kroot=$1 kver=$2 busybox=$3 lists=$4 out=$5 dir a
  dir=$(mktemp -d "$WORK/initramfs.XXXX")
  rootfs_skeleton "$dir"
  install -m 0755 "$busybox" "$dir/usr/bin/busybox"
  for a in $("$dir"/usr/bin/busybox --list-full); do
    [ -e "$dir/$a" ] || ln -s /usr/bin/busybox "$dir/$a"
  done
  install -m 0755 "$BOXES_DIR/lib/initramfs-init" "$dir/init"
  cp "$lists/modules.virtio" "$lists/modules.fs" "$lists/modules.other" "$dir/etc/"
  cat "$lists/modules.virtio" "$lists/modules.fs" "$lists/modules.other" >"$dir/.modules"
  modules_install "$kroot" "$kver" "$dir" "$dir/.modules"
  rm -f "$dir/.modules"
  (cd "$dir" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out"
  rm -rf "$dir"
}

# ---------------------------------------------------------------- disk
#
# The root filesystem covers the whole disk (no partition table): the
# bootloader (extlinux) sits in the filesystem's boot sector, which is the
# disk's first sector, and growing the disk only needs a filesystem resize.

# disk_image ROOTFS RAW SIZE_MIB UUID LABEL
# Creates a raw disk image holding an ext4 filesystem populated from ROOTFS
# and installs extlinux (its configuration must be in ROOTFS/boot/extlinux).
disk_image() {
  local rootfs=$1 raw=$2 size_mib=$3 uuid=$4 label=$5 mnt
  [ -f "$rootfs/boot/extlinux/extlinux.conf" ] || die "no extlinux.conf in the root filesystem"
  rm -f "$raw"
  truncate -s "${size_mib}M" "$raw"
  # 4096-byte blocks (extlinux cannot boot ext4 with 1 KiB blocks); inode
  # tables and journal written now so the guest does not do it at boot.
  mkfs.ext4 -q -F -b 4096 -m 1 -L "$label" -U "$uuid" -i 16384 \
    -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
    -d "$rootfs" "$raw" || die "mkfs.ext4 failed"
  mnt=$(mktemp -d "$WORK/mnt.XXXX")
  mount -o loop "$raw" "$mnt" || die "cannot loop-mount the disk image"
  on_exit "umount -l '$mnt'"
  # The bootloader cannot read files with holes, which mkfs -d makes from
  # zero blocks: rewrite the files under /boot fully allocated.
  find "$mnt/boot" -xdev -type f | while read -r f; do
    cp --sparse=never -p "$f" "$f.alloc" && mv -f "$f.alloc" "$f"
  done
  extlinux --install "$mnt/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
  # Give the blocks of the replaced files back (holes in the image file).
  fstrim "$mnt" 2>/dev/null || true
  sync
  umount "$mnt" || die "cannot unmount the disk image"
  e2fsck -fn "$raw" >/dev/null 2>&1 || die "the filesystem check failed"
}

# raw -> qcow2 with compressed clusters. zstd (QEMU 5.1 or newer) is about
# five times faster than zlib, for both the build and the guest's reads.
VM_BOXES_QCOW2_COMPRESSION=${VM_BOXES_QCOW2_COMPRESSION:-zstd}
disk_to_qcow2() {
  qemu-img convert -q -f raw -O qcow2 -c \
    -o "compression_type=$VM_BOXES_QCOW2_COMPRESSION,cluster_size=65536" "$1" "$2"
}

# ---------------------------------------------------------------- archive

# box_pack DIR OUT: tar.gz of every file at the top of DIR, metadata.json first.
box_pack() {
  local dir=$1 out=$2 files
  files=$(cd "$dir" && ls -1 | grep -vx metadata.json | sort)
  # shellcheck disable=SC2086
  tar -C "$dir" --format=gnu --owner=0 --group=0 --numeric-owner \
    --mtime=@0 -cf - metadata.json $files | gzip -n -6 >"$out"
}

# catalog_write OUT_JSON NAME DESCRIPTION VERSION BOX_FILE_NAME SHA256
catalog_write() {
  cat >"$1" <<EOF
{
  "name": "$2",
  "description": "$3",
  "versions": [
    {
      "version": "$4",
      "providers": [
        {
          "name": "libvirt",
          "url": "$5",
          "checksum_type": "sha256",
          "checksum": "$6",
          "architecture": "amd64",
          "default_architecture": true
        }
      ]
    }
  ]
}
EOF
}

# JSON string escaping for the few values we write.
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# metadata_write DIR NAME VERSION VIRTUAL_SIZE_GB KERNEL INITRD CMDLINE FIRMWARE
# FIRMWARE is "qboot" when KERNEL is an uncompressed vmlinux, else empty.
metadata_write() {
  {
    echo "{"
    echo "  \"provider\": \"libvirt\","
    echo "  \"format\": \"qcow2\","
    echo "  \"virtual_size\": $4,"
    echo "  \"architecture\": \"amd64\","
    echo "  \"name\": $(json_str "vmfile/$2"),"
    echo "  \"version\": $(json_str "$3"),"
    echo "  \"kernel\": $(json_str "$5"),"
    echo "  \"initrd\": $(json_str "$6"),"
    echo "  \"cmdline\": $(json_str "$7"),"
    [ -z "$8" ] || echo "  \"firmware\": $(json_str "$8"),"
    echo "  \"ssh_user\": \"vm\""
    echo "}"
  } >"$1/metadata.json"
}
