#!/usr/bin/env bash
# Stateless NAT64 throughput, tayga beside Sixgate's translator (Examples/nat64) in the same harness
# and run: an IPv6-only client reaches an IPv4-only server through a translator namespace, where the
# translator runs on a TUN device. One iperf3 TCP stream each way (client -> server, then -R), and a
# UDP flood of small packets (packets per second), with the CPU seconds the translator process used.
# Usage: sudo bash Benchmarks/translator-side-by-side.sh [SECONDS=5]
# Not a test: numbers depend on the machine. Needs tayga, iperf3 (scripts/setup.sh installs them).
set -euo pipefail
umask 077
SECONDS_PER_RUN=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.build/release/nat64"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product nat64 >/dev/null)
command -v tayga >/dev/null || { echo "needs tayga (apt-get install tayga)" >&2; exit 1; }
ID=$$
C=sg-nb-c-$ID; X=sg-nb-x-$ID; S=sg-nb-s-$ID
DIR=/tmp/sg-nb-$ID
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for ns in $C $X $S; do ip netns del $ns 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR"
for ns in $C $X $S; do
    ip netns add $ns
    ip -n $ns link set lo up
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip link add nbc$ID netns $C type veth peer name nbxc$ID netns $X
ip link add nbs$ID netns $S type veth peer name nbxs$ID netns $X
ip netns exec $S sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $S link set nbs$ID up; ip -n $S addr add 203.0.113.5/24 dev nbs$ID
ip -n $S route add 192.0.2.0/24 via 203.0.113.1
ip -n $X link set nbxc$ID up; ip -n $X link set nbxs$ID up
ip -n $X -6 addr add 2001:db8:1::1/64 dev nbxc$ID nodad
ip -n $X addr add 203.0.113.1/24 dev nbxs$ID
ip netns exec $X sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
ip -n $C link set nbc$ID up
ip -n $C -6 addr add 2001:db8:1::10/64 dev nbc$ID nodad
ip -n $C -6 route add default via 2001:db8:1::1
TARGET=2001:db8:64::cb00:7105   # 203.0.113.5 in the NAT64 prefix

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

route_into() { # $1 = TUN name
    ip -n $X link set "$1" up
    ip -n $X -6 route add 2001:db8:64::/96 dev "$1"
    ip -n $X route add 192.0.2.0/24 dev "$1"
}

start_translator() { # $1 = tayga | sixgate; sets TP (translator pid)
    local tun=nbt$ID
    if [ "$1" = tayga ]; then
        cat > "$DIR/tayga.conf" <<EOF
tun-device $tun
ipv4-addr 192.0.2.1
prefix 2001:db8:64::/96
map 192.0.2.10 2001:db8:1::10
data-dir $DIR/tayga
EOF
        mkdir -p "$DIR/tayga"
        ip netns exec $X tayga -c "$DIR/tayga.conf" --mktun >/dev/null
        route_into $tun
        ip netns exec $X tayga -c "$DIR/tayga.conf" --nodetach >"$DIR/tayga.log" 2>&1 & TP=$!
    else
        ip netns exec $X "$BIN" $tun 2001:db8:64::/96 192.0.2.10=2001:db8:1::10 >"$DIR/nat64.log" 2>&1 & TP=$!
        for _ in $(seq 50); do ip -n $X link show $tun >/dev/null 2>&1 && break; sleep 0.1; done
        route_into $tun
    fi
    PIDS+=($TP)
    ip netns exec $C ping -6 -c 2 -i 0.3 -W 2 $TARGET >/dev/null || { echo "no path through $1" >&2; cat "$DIR"/*.log >&2; exit 1; }
}

stop_translator() {
    kill $TP 2>/dev/null || true; wait $TP 2>/dev/null || true
    ip -n $X link del nbt$ID 2>/dev/null || true
}

iperf() { # $1 = label, rest = iperf3 client args; prints "bits/s packets/s cpu-seconds"
    local label=$1; shift
    ip netns exec $S iperf3 -s -1 -B 203.0.113.5 >/dev/null 2>&1 & local ps=$!
    sleep 0.4
    local c0; c0=$(cpu_seconds $TP)
    ip netns exec $C iperf3 -6 -c $TARGET -t "$SECONDS_PER_RUN" -J "$@" > "$DIR/$label.json" 2>&1 || true
    local c1; c1=$(cpu_seconds $TP)
    wait $ps 2>/dev/null || true
    python3 - "$DIR/$label.json" "$c0" "$c1" <<'EOF'
import json, sys
cpu = float(sys.argv[3]) - float(sys.argv[2])
try:
    o = json.load(open(sys.argv[1])); end = o["end"]; udp = o["start"]["test_start"]["protocol"] == "UDP"
except Exception:
    print(0, 0, cpu); sys.exit()
r = end["sum_received"]
if udp:   # packets that arrived, per second
    s = end["sum"]; print(r["bits_per_second"], (s["packets"] - s["lost_packets"]) / s["seconds"], cpu)
else:     # TCP: what the receiver got
    print(r["bits_per_second"], 0, cpu)
EOF
}

declare -A R
for kind in tayga sixgate; do
    start_translator $kind
    read -r bps _ cpu < <(iperf tcp6to4-$kind); R[$kind.tcp]=$bps; R[$kind.tcpcpu]=$cpu
    read -r bps _ cpu < <(iperf tcp4to6-$kind -R); R[$kind.rev]=$bps; R[$kind.revcpu]=$cpu
    read -r _ pps cpu < <(iperf udp-$kind -u -l 64 -b 0); R[$kind.pps]=$pps; R[$kind.ppscpu]=$cpu
    stop_translator
done

echo "translator-side-by-side: ${SECONDS_PER_RUN} s per test, same run (CPU-s: the translator process)"
printf '%-34s %14s %14s %8s\n' test tayga sixgate ratio
row() { # label tayga sixgate unit scale
    printf '%-34s %10.1f %-3s %10.1f %-3s %7.2fx\n' "$1" "$(echo "$2 / $5" | bc -l)" "$4" "$(echo "$3 / $5" | bc -l)" "$4" "$(echo "$3 / $2" | bc -l)"
}
row "TCP IPv6 -> IPv4 (one stream)" "${R[tayga.tcp]}" "${R[sixgate.tcp]}" Mb/s 1000000
row "TCP IPv4 -> IPv6 (iperf3 -R)" "${R[tayga.rev]}" "${R[sixgate.rev]}" Mb/s 1000000
row "UDP 64-byte payloads, delivered" "${R[tayga.pps]}" "${R[sixgate.pps]}" kp/s 1000
cpu_per_gbit() { echo "$2 / ($1 * $SECONDS_PER_RUN / 1000000000)" | bc -l; }
printf '%-34s %10.2f %14.2f\n' "CPU-s per Gbit, TCP IPv6 -> IPv4" "$(cpu_per_gbit "${R[tayga.tcp]}" "${R[tayga.tcpcpu]}")" "$(cpu_per_gbit "${R[sixgate.tcp]}" "${R[sixgate.tcpcpu]}")"
printf '%-34s %10.2f %14.2f\n' "CPU-s per Gbit, TCP IPv4 -> IPv6" "$(cpu_per_gbit "${R[tayga.rev]}" "${R[tayga.revcpu]}")" "$(cpu_per_gbit "${R[sixgate.rev]}" "${R[sixgate.revcpu]}")"
