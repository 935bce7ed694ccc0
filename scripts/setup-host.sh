#!/usr/bin/env bash
# Prepares a Debian 12 machine for vmfile, as root: Debian packages (QEMU, qemu-img, OpenSSH
# and what building boxes needs), the npm dependencies, and the build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: run as root (sudo bash scripts/setup-host.sh): it installs Debian packages" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
packages=(qemu-system-x86 qemu-utils openssh-client rsync ca-certificates)
# ansible-playbook, for the ansible provisioner and its end-to-end test.
packages+=(ansible-core)
# Networks: ip for taps and bridges; dnsmasq-base (no system service) serves DHCP in the tests'
# network namespaces; util-linux gives unshare and setpriv.
packages+=(iproute2 dnsmasq-base util-linux)
# Vagrant itself, to check that it reads the catalogs and registries vm writes (box add only:
# no provider plugin is needed).
packages+=(vagrant)
# The NoCloud seed tests read the ISO 9660 images vm writes with independent readers, without
# mounting: isoinfo (genisoimage) and 7z (p7zip-full); python3 parses user-data as cloud-init does.
packages+=(genisoimage p7zip-full python3)
# The reference OCI distribution registry, which the registry tests start on 127.0.0.1 (push,
# pull, auth); openssl makes their self-signed certificate.
packages+=(docker-registry openssl)
# The libvirt engine and its tests: libvirt's monolithic daemon, its QEMU driver and virsh. Not
# libvirt-daemon-system: it pulls in systemd and starts a system libvirtd; the tests start their
# own libvirtd and virtlogd, with configuration they write, inside network namespaces. iptables
# gives libvirt's NAT networks their rules (libvirtd looks for it once, when it starts);
# openssh-server is the sshd the tests start in a pretend remote host for qemu+ssh:// URIs.
packages+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients iptables openssh-server)
if [ -f boxes/host-packages.txt ]; then
  while read -r name; do
    name=${name%%#*}
    name=${name//[[:space:]]/}
    [ -n "$name" ] && packages+=("$name")
  done < boxes/host-packages.txt
fi

missing=()
for name in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libvirtd resolves the libvirt-qemu user and the kvm group when it starts, before it reads
# qemu.conf (which makes it run QEMU as root); libvirt-daemon-system would create them.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
# openssh-server's package does not start sshd here (no init system), but its service would make
# the privilege separation directory; the tests' sshd needs it.
install -d -m 0755 /run/sshd

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup-host: vmfile needs Node.js 20 or newer with npm; Debian 12's nodejs package is 18." >&2
  echo "            Install Node.js 20+ (for example from NodeSource) and run this again." >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
echo "setup-host: ready ($(./bin/run.js --version))"
