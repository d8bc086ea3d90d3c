#!/usr/bin/env bash
# The main job: a Sixgate gateway and a client in network namespaces, traffic flowing, on embedded
# defaults, then torn down. Three namespaces: sg-demo-isp (the upstream router, owning
# 2001:db8:1::/64 on-link, and an "internet" host 2001:db8:ffff::1 / 203.0.113.1 on its loopback),
# sg-demo-gw (gatewayd), sg-demo-client (a stock wireguard-go client configured from the file
# `gatewayctl clients add` prints) and sg-demo-sixgate (Sixgate's tunnel-client, which learns its
# addresses from the gateway inside the tunnel). Documentation address ranges only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ "$(id -u)" -ne 0 ]; then echo "demo: needs root (network namespaces, TUN)" >&2; exit 1; fi
swift build --product gatewayd 2>&1 | tail -1
swift build --product gatewayctl 2>&1 | tail -1
swift build --product tunnel-client 2>&1 | tail -1
bin=$(swift build --show-bin-path)

isp=sg-demo-isp gw=sg-demo-gw cl=sg-demo-client sx=sg-demo-sixgate
state=$(mktemp -d /tmp/sg-demo.XXXXXX)
gwpid="" wgpid="" tcpid=""
cleanup() {
    [ -n "$tcpid" ] && kill -TERM "$tcpid" 2>/dev/null && wait "$tcpid" 2>/dev/null || true
    [ -n "$gwpid" ] && kill -TERM "$gwpid" 2>/dev/null && wait "$gwpid" 2>/dev/null || true
    [ -n "$wgpid" ] && kill "$wgpid" 2>/dev/null || true
    for ns in $isp $gw $cl $sx; do ip netns del $ns 2>/dev/null || true; done
    rm -rf "$state" /var/run/wireguard/sgdemo0.sock /var/run/wireguard/sgdemoc.sock
}
trap cleanup EXIT
cleanup_ns() { for ns in $isp $gw $cl $sx; do ip netns del $ns 2>/dev/null || true; done; }
cleanup_ns

step() { echo; echo "=== $*"; }
step "namespaces: $isp <-> $gw <-> $cl, $sx"
for ns in $isp $gw $cl $sx; do
    ip netns add $ns
    ip -n $ns link set lo up
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip link add sgdi0 netns $isp type veth peer name sgdu0 netns $gw
ip link add sgdo0 netns $gw type veth peer name sgdc0 netns $cl
ip link add sgdp0 netns $gw type veth peer name sgds0 netns $sx
for l in "$isp sgdi0" "$gw sgdu0" "$gw sgdo0" "$cl sgdc0" "$gw sgdp0" "$sx sgds0"; do set -- $l; ip -n $1 link set $2 up; done
ip -n $isp addr add 2001:db8:1::1/64 dev sgdi0 nodad
ip -n $isp addr add 198.51.100.1/25 dev sgdi0
ip -n $isp addr add 2001:db8:ffff::1/128 dev lo
ip -n $isp addr add 203.0.113.1/32 dev lo
ip -n $gw addr add 2001:db8:1::2/64 dev sgdu0 nodad
ip -n $gw addr add 198.51.100.2/25 dev sgdu0
ip -n $gw -6 route add default via 2001:db8:1::1 dev sgdu0
ip -n $gw route add default via 198.51.100.1
ip -n $gw addr add 198.51.100.129/25 dev sgdo0
ip -n $cl addr add 198.51.100.130/25 dev sgdc0
ip -n $gw addr add 203.0.113.129/25 dev sgdp0
ip -n $sx addr add 203.0.113.130/25 dev sgds0

step "gatewayd in $gw (config: $state/gatewayd.toml)"
cat > "$state/gatewayd.toml" <<CONF
state_directory = "$state"
interface = "sgdemo0"
endpoint = "198.51.100.129:51820"
[uplink]
interface = "sgdu0"
[ipv6]
prefix = "2001:db8:1::/64"     # ::1 the ISP router, ::2 the uplink, ::3 the gateway, clients from ::4
[ipv4]
pool = "192.0.2.0/24"          # the gateway is .1; NAT44 out of the uplink
CONF
cat "$state/gatewayd.toml"
ip netns exec $gw "$bin/gatewayd" --config "$state/gatewayd.toml" > "$state/gatewayd.log" 2>&1 &
gwpid=$!
for _ in $(seq 50); do grep -q "up: sgdemo0" "$state/gatewayd.log" 2>/dev/null && break; sleep 0.2; done
cat "$state/gatewayd.log"

step "gatewayctl clients add demo-laptop"
ip netns exec $gw "$bin/gatewayctl" clients add demo-laptop --config "$state/gatewayd.toml" | tee "$state/client.conf"

step "the client: wireguard-go set up from that file, as wg-quick would"
WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error ip netns exec $cl wireguard-go -f sgdemoc >/dev/null 2>&1 &
wgpid=$!
for _ in $(seq 50); do [ -S /var/run/wireguard/sgdemoc.sock ] && break; sleep 0.1; done
field() { sed -n "s/^$1 = //p" "$state/client.conf"; }
field PrivateKey > "$state/client.key"
ip netns exec $cl wg set sgdemoc private-key "$state/client.key" peer "$(field PublicKey)" \
    endpoint "$(field Endpoint)" allowed-ips "$(field AllowedIPs | tr -d ' ')" persistent-keepalive 25
for a in $(field Address | tr ',' ' '); do ip -n $cl addr add "$a" dev sgdemoc; done
ip -n $cl link set sgdemoc mtu "$(field MTU)" up
ip -n $cl -6 route add default dev sgdemoc
ip -n $cl route add default dev sgdemoc

step "traffic: the client reaches the internet host over IPv6 (NDP proxy) and IPv4 (NAT44)"
ip netns exec $cl ping -c 3 -i 0.3 2001:db8:ffff::1
ip netns exec $cl ping -c 3 -i 0.3 203.0.113.1

step "Sixgate's own client: gatewayctl clients add demo-sixgate --format tunnel-client"
ip netns exec $gw "$bin/gatewayctl" clients add demo-sixgate --format tunnel-client --config "$state/gatewayd.toml" \
    | sed -e 's/^interface = .*/interface = "sgdemox"/' -e 's/^endpoint = .*/endpoint = "203.0.113.129:51820"/' | tee "$state/sixgate.toml"
ip netns exec $sx "$bin/tunnel-client" --config "$state/sixgate.toml" --state-file "$state/sixgate.json" > "$state/tunnel-client.log" 2>&1 &
tcpid=$!
for _ in $(seq 100); do grep -q "configured:" "$state/tunnel-client.log" 2>/dev/null && break; sleep 0.2; done
cat "$state/tunnel-client.log"
ip -n $sx -br addr show dev sgdemox
ip netns exec $sx ping -c 3 -i 0.3 2001:db8:ffff::1
ip netns exec $sx ping -c 3 -i 0.3 203.0.113.1
"$bin/tunnel-client" status --config "$state/sixgate.toml" --state-file "$state/sixgate.json"
kill -TERM $tcpid; wait $tcpid || true; tcpid=""
echo "tunnel-client stopped: interface sgdemox $(ip -n $sx link show sgdemox >/dev/null 2>&1 && echo left || echo removed)"

step "gatewayctl status, and wg show through the UAPI"
ip netns exec $gw "$bin/gatewayctl" status --config "$state/gatewayd.toml"
ip netns exec $gw wg show sgdemo0

step "gatewayctl capture on the tunnel, and gatewayctl doctor, while the laptop pings"
ip netns exec $cl ping -c 12 -i 0.25 2001:db8:ffff::1 >/dev/null &
pingpid=$!
ip netns exec $gw "$bin/gatewayctl" capture --count 4 --seconds 5 --config "$state/gatewayd.toml"
ip netns exec $gw "$bin/gatewayctl" doctor --capture-seconds 2 --config "$state/gatewayd.toml" \
    || echo "(the doctor found problems: see above)"
wait $pingpid || true

step "SIGTERM: gatewayd removes what it added"
kill -TERM $gwpid; wait $gwpid || true; gwpid=""
tail -2 "$state/gatewayd.log"
echo "routes of protocol 74 left: $(ip -n $gw -6 route show proto 74 | wc -l), proxy entries left: $(ip -n $gw -6 neigh show proxy | wc -l)"
echo "demo: done"
