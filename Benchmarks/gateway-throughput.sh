#!/usr/bin/env bash
# Through a tunnel gateway, as operators deploy one: a client namespace with a userspace WireGuard
# device, a gateway namespace with the other end whose kernel forwards the decrypted traffic to a
# third namespace (the "internet host", iperf3 server). Sixgate (sixgate-wg) and wireguard-go in the
# same run, rows interleaved round by round: IPv6 and IPv4 inner, 1 and 4 TCP streams, upload (client
# -> host) and download (-R), several rounds, medians. Per row: Mbit/s, CPU seconds of the two tunnel
# processes, Mbit/s per core of that CPU, ping RTT client -> host under load, UDP receive-buffer drops
# in the client and gateway namespaces (RcvbufErrors, IPv4+IPv6).
#   sudo bash Benchmarks/gateway-throughput.sh [SECONDS=4] [ROUNDS=3]
# COMPARE_FIFO=1 adds Sixgate with queue management off (--queue-target 0) to every round and a
# table of it beside Sixgate's defaults.
# Not a test: numbers depend on the machine. Needs wireguard-go, wireguard-tools, iperf3, bc (setup.sh).
set -euo pipefail
umask 077
T=${1:-4}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.build/release/sixgate-wg"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product sixgate-wg >/dev/null)
ID=$$
C=sg-gt-c-$ID; G=sg-gt-g-$ID; H=sg-gt-h-$ID
DIR=/tmp/sg-gt-$ID
TPIDS=()
cleanup() {
    stop_tunnels
    [ -f "$DIR/iperf.pid" ] && kill "$(cat "$DIR/iperf.pid")" 2>/dev/null || true
    sleep 0.3
    for ns in $C $G $H; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$DIR"
}
stop_tunnels() {
    for p in "${TPIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${TPIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    TPIDS=()
}
trap cleanup EXIT
mkdir -p "$DIR"
for ns in $C $G $H; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# Underlay client <-> gateway; the gateway's uplink to the host.
ip link add gtc$ID netns $C type veth peer name gtg$ID netns $G
ip link add gtu$ID netns $G type veth peer name gth$ID netns $H
ip -n $C addr add 192.0.2.2/24 dev gtc$ID; ip -n $G addr add 192.0.2.1/24 dev gtg$ID
ip -n $G addr add 203.0.113.1/24 dev gtu$ID; ip -n $H addr add 203.0.113.2/24 dev gth$ID
ip -n $G addr add 2001:db8:99::1/64 dev gtu$ID nodad; ip -n $H addr add 2001:db8:99::2/64 dev gth$ID nodad
for l in "$C gtc$ID" "$G gtg$ID" "$G gtu$ID" "$H gth$ID"; do set -- $l; ip -n "$1" link set "$2" up; done
ip netns exec $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n $H route add 198.51.100.0/24 via 203.0.113.1
ip -n $H -6 route add 2001:db8:77::/64 via 2001:db8:99::1
ip netns exec $H iperf3 -s -D --pidfile "$DIR/iperf.pid" >/dev/null
wg genkey > "$DIR/c.key"; wg genkey > "$DIR/g.key"

start_tunnels() { # $1 = sixgate | sixgate-fifo | wireguard-go
    local a=gtwc$ID b=gtwg$ID extra=()
    rm -f /var/run/wireguard/$a.sock /var/run/wireguard/$b.sock
    [ "$1" = sixgate-fifo ] && extra=(--queue-target 0)
    if [ "$1" != wireguard-go ]; then
        ip netns exec $C "$BIN" -f "${extra[@]}" $a >"$DIR/c.log" 2>&1 & TPIDS+=($!)
        ip netns exec $G "$BIN" -f "${extra[@]}" $b >"$DIR/g.log" 2>&1 & TPIDS+=($!)
    else
        ip netns exec $C env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error wireguard-go -f $a >"$DIR/c.log" 2>&1 & TPIDS+=($!)
        ip netns exec $G env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error wireguard-go -f $b >"$DIR/g.log" 2>&1 & TPIDS+=($!)
    fi
    for s in $a $b; do for _ in $(seq 50); do [ -S /var/run/wireguard/$s.sock ] && break; sleep 0.1; done; done
    ip netns exec $C wg set $a private-key "$DIR/c.key" listen-port 51821 peer "$(wg pubkey < "$DIR/g.key")" \
        endpoint 192.0.2.1:51820 allowed-ips 203.0.113.0/24,2001:db8:99::/64,198.51.100.1/32,2001:db8:77::1/128
    ip netns exec $G wg set $b private-key "$DIR/g.key" listen-port 51820 peer "$(wg pubkey < "$DIR/c.key")" \
        allowed-ips 198.51.100.2/32,2001:db8:77::2/128
    ip -n $C addr add 198.51.100.2/24 dev $a; ip -n $C addr add 2001:db8:77::2/64 dev $a nodad
    ip -n $G addr add 198.51.100.1/24 dev $b; ip -n $G addr add 2001:db8:77::1/64 dev $b nodad
    ip -n $C link set $a mtu 1420 up; ip -n $G link set $b mtu 1420 up
    ip -n $C route add 203.0.113.0/24 dev $a; ip -n $C -6 route add 2001:db8:99::/64 dev $a
    ip netns exec $C ping -c 2 -W 2 203.0.113.2 >/dev/null || { echo "no path through $1:"; cat "$DIR/c.log" "$DIR/g.log"; exit 1; }
}

cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
drops() { # RcvbufErrors of UDP and UDP6 in the client's and the gateway's namespace, summed
    local n=0
    for ns in $C $G; do
        n=$((n + $(ip netns exec "$ns" awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp)))
        n=$((n + $(ip netns exec "$ns" awk '$1 == "Udp6RcvbufErrors" { print $2 }' /proc/net/snmp6)))
    done
    echo $n
}

run_row() { # impl family streams direction -> appends "impl family streams dir mbps cpu ping drops" to rows
    local impl=$1 fam=$2 streams=$3 dir=$4 addr=203.0.113.2
    [ "$fam" = v6 ] && addr=2001:db8:99::2
    local rflag=""; [ "$dir" = down ] && rflag="-R"
    local c0=0 c1=0 p d0 d1
    for p in "${TPIDS[@]}"; do c0=$(echo "$c0 + $(cpu "$p")" | bc -l); done
    d0=$(drops)
    ip netns exec $C ping -i 0.2 -c $((T * 5 - 3)) -w $((T + 3)) "$addr" > "$DIR/ping.txt" 2>&1 &
    local ping_pid=$!
    ip netns exec $C iperf3 -c "$addr" -t "$T" -P "$streams" $rflag -f m > "$DIR/iperf.txt" 2>&1 || { echo "iperf3 failed ($impl $fam $streams $dir):"; cat "$DIR/iperf.txt"; }
    wait $ping_pid 2>/dev/null || true
    for p in "${TPIDS[@]}"; do c1=$(echo "$c1 + $(cpu "$p")" | bc -l); done
    d1=$(drops)
    local mbps rtt
    mbps=$(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") v = $i } END { print v + 0 }' "$DIR/iperf.txt")
    rtt=$(awk -F'/' '/^rtt/ { print $5 } END { }' "$DIR/ping.txt"); rtt=${rtt:-nan}
    echo "$impl $fam $streams $dir $mbps $(echo "$c1 - $c0" | bc -l) $rtt $((d1 - d0))" >> "$DIR/rows"
}

: > "$DIR/rows"
for round in $(seq "$ROUNDS"); do
    for impl in wireguard-go sixgate ${COMPARE_FIFO:+sixgate-fifo}; do
        start_tunnels $impl
        for fam in v6 v4; do for streams in 1 4; do for dir in up down; do run_row $impl $fam $streams $dir; done; done; done
        stop_tunnels
        echo "round $round: $impl done" >&2
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "gateway-throughput: client -> tunnel -> gateway (kernel forwarding) -> host, ${T} s per row, $ROUNDS rounds, medians, same run"
printf '%-4s %-3s %-5s | %-34s | %-34s | %s\n' fam P dir "wireguard-go Mbit/s  Mb/s/core  ping" "sixgate Mbit/s  Mb/s/core  ping" "ratio  UDP drops wg/sg"
for fam in v6 v4; do for streams in 1 4; do for dir in up down; do
    line="$fam $streams $dir"
    out=()
    for impl in wireguard-go sixgate; do
        sel() { awk -v i=$impl -v f=$fam -v s=$streams -v d=$dir -v c="$1" '$1 == i && $2 == f && $3 == s && $4 == d { print $c }' "$DIR/rows"; }
        m=$(sel 5 | median); cpu_s=$(sel 6 | median); r=$(sel 7 | grep -v nan | median || true); dr=$(sel 8 | awk '{ s += $1 } END { print s + 0 }')
        per_core=$(echo "if ($cpu_s > 0) $m / ($cpu_s / $T) else 0" | bc -l)
        out+=("$m" "$per_core" "${r:-nan}" "$dr")
    done
    printf '%-4s %-3s %-5s | %10.0f %12.0f %9s ms | %10.0f %12.0f %9s ms | %5.2fx  %s/%s\n' $fam $streams $dir \
        "${out[0]}" "${out[1]}" "${out[2]}" "${out[4]}" "${out[5]}" "${out[6]}" "$(echo "${out[4]} / ${out[0]}" | bc -l)" "${out[3]}" "${out[7]}"
done; done; done
if [ -n "${COMPARE_FIFO:-}" ]; then
    echo "Sixgate with and without queue management (FQ-CoDel toward the peer, CoDel on the receive queue), same run:"
    printf '%-4s %-3s %-5s | %-24s | %-24s\n' fam P dir "defaults Mbit/s  ping" "--queue-target 0  ping"
    for fam in v6 v4; do for streams in 1 4; do for dir in up down; do
        out=()
        for impl in sixgate sixgate-fifo; do
            sel() { awk -v i=$impl -v f=$fam -v s=$streams -v d=$dir -v c="$1" '$1 == i && $2 == f && $3 == s && $4 == d { print $c }' "$DIR/rows"; }
            out+=("$(sel 5 | median)" "$(sel 7 | grep -v nan | median || true)")
        done
        printf '%-4s %-3s %-5s | %10.0f %9s ms | %10.0f %9s ms\n' $fam $streams $dir "${out[0]}" "${out[1]}" "${out[2]}" "${out[3]}"
    done; done; done
fi
cp "$DIR/rows" "/tmp/gateway-throughput-rows-$ID.txt"
echo "raw rows: /tmp/gateway-throughput-rows-$ID.txt"
