/**
 * The guest side of extra NICs: one shell script, run over SSH as root after every boot, that
 * finds each NIC by its MAC and gives it its static address or DHCP through whatever manages
 * the guest's network (systemd-networkd as on Debian and Ubuntu servers, NetworkManager, or
 * nothing: ip and a DHCP client, as on the tiny box and ifupdown systems), then reports the
 * address each NIC has. POSIX sh and busybox compatible.
 */

export interface GuestNic {
  mac: string
  /** Static address with prefix (e.g. 192.168.56.10/24); DHCP when undefined. */
  address: string | undefined
}

export interface GuestNicState {
  mac: string
  device: string | undefined
  /** IPv4 address with prefix, undefined when the NIC has none (yet). */
  address: string | undefined
  error: string | undefined
}

/** Seconds the script waits for addresses (DHCP leases, duplicate address detection). */
export const ADDRESS_WAIT_SECONDS = 40

const quote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

const SCRIPT = String.raw`
PATH=/usr/sbin:/usr/bin:/sbin:/bin
find_dev() {
  for p in /sys/class/net/*; do
    [ "$(cat "$p/address" 2>/dev/null)" = "$1" ] && { echo "\${p##*/}"; return 0; }
  done
  return 1
}
addr_of() { ip -4 -o addr show dev "$1" scope global 2>/dev/null | awk '{print $4; exit}'; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
manager=plain
if [ -d /run/systemd/system ] && systemctl is-active -q systemd-networkd 2>/dev/null; then
  manager=networkd
elif command -v nmcli >/dev/null 2>&1 && nmcli -t -f RUNNING general 2>/dev/null | grep -q '^running'; then
  manager=nm
fi
devs=''
configure() {
  mac=$1 addr=$2
  dev=$(find_dev "$mac") || { echo "error $mac no-interface"; return 0; }
  devs="$devs $mac=$dev=$addr"
  case $manager in
  networkd)
    mkdir -p /run/systemd/network
    {
      printf '[Match]\nMACAddress=%s\n\n[Network]\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$mac"
      if [ -n "$addr" ]; then printf 'DHCP=no\nAddress=%s\n' "$addr"; else printf 'DHCP=ipv4\n'; fi
    } >"/run/systemd/network/05-vmfile-$dev.network"
    ;;
  nm)
    nmcli connection delete "vmfile-$dev" >/dev/null 2>&1
    if [ -n "$addr" ]; then
      nmcli connection add type ethernet con-name "vmfile-$dev" ifname "$dev" ipv4.method manual ipv4.addresses "$addr" ipv6.method ignore >/dev/null
    else
      nmcli connection add type ethernet con-name "vmfile-$dev" ifname "$dev" ipv4.method auto ipv6.method ignore >/dev/null
    fi
    nmcli connection up "vmfile-$dev" >/dev/null 2>&1 &
    ;;
  *)
    ip link set dev "$dev" up
    if [ -n "$addr" ]; then
      # A DHCP client left on this NIC (the tiny box starts one on every NIC) would flush it.
      for f in "/run/udhcpc/$dev.pid" "/run/udhcpc.$dev.pid" "/run/dhclient.$dev.pid"; do
        pid_alive "$f" && kill "$(cat "$f")" 2>/dev/null
        rm -f "$f"
      done
      ip -4 addr flush dev "$dev"
      ip addr add "$addr" dev "$dev"
    elif [ -z "$(addr_of "$dev")" ] && ! pid_alive "/run/udhcpc/$dev.pid" && ! pid_alive "/run/udhcpc.$dev.pid"; then
      if command -v dhclient >/dev/null 2>&1; then
        dhclient -nw -pf "/run/dhclient.$dev.pid" "$dev" >/dev/null 2>&1
      elif command -v udhcpc >/dev/null 2>&1; then
        script=''
        [ -x /usr/share/udhcpc/default.script ] && script="-s /usr/share/udhcpc/default.script"
        udhcpc -b -S -i "$dev" $script -p "/run/udhcpc.$dev.pid" >/dev/null 2>&1
      else
        echo "error $mac no-dhcp-client"
      fi
    fi
    ;;
  esac
}
`

const REPORT = String.raw`
if [ "$manager" = networkd ]; then
  networkctl reload >/dev/null 2>&1 || systemctl restart systemd-networkd
  for entry in $devs; do
    dev=\${entry#*=}; dev=\${dev%%=*}
    networkctl reconfigure "$dev" >/dev/null 2>&1
  done
fi
deadline=$(( $(date +%s) + WAIT ))
for entry in $devs; do
  mac=\${entry%%=*}; rest=\${entry#*=}; dev=\${rest%%=*}; want=\${rest#*=}
  while :; do
    got=$(addr_of "$dev")
    if [ -n "$want" ]; then
      ip -4 -o addr show dev "$dev" | grep -q " $want " && break
    else
      [ -n "$got" ] && break
    fi
    [ "$(date +%s)" -ge "$deadline" ] && break
    sleep 0.5
  done
  echo "nic $mac $dev \${got:--}"
done
`

/** The script; run it with `sh -s` as root. */
export function guestNetworkScript(nics: GuestNic[], waitSeconds = ADDRESS_WAIT_SECONDS): string {
  const calls = nics.map((nic) => `configure ${quote(nic.mac.toLowerCase())} ${quote(nic.address ?? '')}`).join('\n')
  return `${SCRIPT.replaceAll('\\${', '${')}\n${calls}\n${REPORT.replaceAll('\\${', '${').replace('WAIT', String(waitSeconds))}`
}

/** Reads the script's report: one state per NIC, in the order asked. */
export function parseGuestNetworkReport(nics: GuestNic[], output: string): GuestNicState[] {
  const found = new Map<string, GuestNicState>()
  for (const line of output.split('\n')) {
    const [kind, mac, ...rest] = line.trim().split(/\s+/)
    if (mac === undefined) continue
    if (kind === 'nic') {
      const [device, address] = rest
      found.set(mac, {mac, device, address: address === undefined || address === '-' ? undefined : address, error: undefined})
    } else if (kind === 'error') {
      found.set(mac, {mac, device: undefined, address: undefined, error: rest.join(' ')})
    }
  }
  return nics.map((nic) => {
    const mac = nic.mac.toLowerCase()
    return found.get(mac) ?? {mac, device: undefined, address: undefined, error: 'not-reported'}
  })
}
