#!/usr/bin/env bash
# TCP throughput through a userspace WireGuard tunnel between two namespaces, Sixgate <-> Sixgate and
# wireguard-go <-> wireguard-go in the same run (iperf3, one stream), with CPU seconds per Gbit of
# the two tunnel processes. Usage: sudo bash Benchmarks/tunnel-throughput.sh [SECONDS=5]
# Not a test: numbers depend on the machine. Needs wireguard-go, wireguard-tools, iperf3 (setup.sh).
set -euo pipefail
umask 077
SECONDS_PER_RUN=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.build/release/sixgate-wg"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product sixgate-wg >/dev/null)
ID=$$
L=sg-tp-l-$ID; R=sg-tp-r-$ID
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.3
    ip netns del $L 2>/dev/null || true; ip netns del $R 2>/dev/null || true
    rm -rf "/tmp/sg-tp-$ID"
}
trap cleanup EXIT
mkdir -p "/tmp/sg-tp-$ID"; chmod 700 "/tmp/sg-tp-$ID"
ip netns add $L; ip netns add $R
ip link add tpl$ID netns $L type veth peer name tpr$ID netns $R
ip -n $L addr add 192.0.2.1/24 dev tpl$ID; ip -n $R addr add 192.0.2.2/24 dev tpr$ID
for ns in $L $R; do ip -n $ns link set lo up; done
ip -n $L link set tpl$ID up; ip -n $R link set tpr$ID up

cpu_seconds() { # utime+stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

run_pair() { # $1 = sixgate | wireguard-go ; prints "Mbit/s cpu-seconds"
    local kind=$1 a=tpa$ID b=tpb$ID
    if [ "$kind" = sixgate ]; then
        ip netns exec $L "$BIN" -f $a >/dev/null 2>&1 & PA=$!
        ip netns exec $R "$BIN" -f $b >/dev/null 2>&1 & PB=$!
    else
        ip netns exec $L env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f $a >/dev/null 2>&1 & PA=$!
        ip netns exec $R env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f $b >/dev/null 2>&1 & PB=$!
    fi
    PIDS+=($PA $PB)
    for s in $a $b; do for _ in $(seq 50); do [ -S /var/run/wireguard/$s.sock ] && break; sleep 0.1; done; done
    local kd="/tmp/sg-tp-$ID"
    wg genkey > $kd/a; wg genkey > $kd/b
    ip netns exec $L wg set $a private-key $kd/a listen-port 51820 peer "$(wg pubkey < $kd/b)" endpoint 192.0.2.2:51821 allowed-ips 198.51.100.2/32
    ip netns exec $R wg set $b private-key $kd/b listen-port 51821 peer "$(wg pubkey < $kd/a)" endpoint 192.0.2.1:51820 allowed-ips 198.51.100.1/32
    ip -n $L addr add 198.51.100.1/24 dev $a; ip -n $L link set $a mtu 1420 up
    ip -n $R addr add 198.51.100.2/24 dev $b; ip -n $R link set $b mtu 1420 up
    ip netns exec $R iperf3 -s -1 -B 198.51.100.2 >/dev/null 2>&1 & PS=$!
    sleep 0.5
    ip netns exec $L ping -c 2 -W 2 198.51.100.2 >/dev/null
    local c0a c0b; c0a=$(cpu_seconds $PA); c0b=$(cpu_seconds $PB)
    ip netns exec $L iperf3 -c 198.51.100.2 -t "$SECONDS_PER_RUN" -f k > "$kd/iperf-$kind.txt" || { echo "iperf3 failed ($kind):" >&2; cat "$kd/iperf-$kind.txt" >&2; }
    # "[  5]   0.00-5.00   sec   590 MBytes   990000 Kbits/sec                  receiver"
    local bps; bps=$(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Kbits/sec") v = $i * 1000 } END { print v + 0 }' "$kd/iperf-$kind.txt")
    local c1a c1b; c1a=$(cpu_seconds $PA); c1b=$(cpu_seconds $PB)
    wait $PS 2>/dev/null || true
    kill $PA $PB; wait $PA $PB 2>/dev/null || true
    echo "$bps $(echo "$c1a - $c0a + $c1b - $c0b" | bc -l)"
}

read -r WG_BPS WG_CPU < <(run_pair wireguard-go)
read -r SG_BPS SG_CPU < <(run_pair sixgate)
report() { # name bps cpu
    local mbit; mbit=$(echo "$2 / 1000000" | bc -l)
    local gbit_total; gbit_total=$(echo "$2 * $SECONDS_PER_RUN / 1000000000" | bc -l)
    printf '%-13s %8.1f Mbit/s  %6.2f CPU-s per Gbit\n' "$1" "$mbit" "$(echo "$3 / $gbit_total" | bc -l)"
}
echo "tunnel-throughput: one TCP stream, ${SECONDS_PER_RUN} s each, same run"
report wireguard-go "$WG_BPS" "$WG_CPU"
report sixgate "$SG_BPS" "$SG_CPU"
printf 'ratio sixgate/wireguard-go: %.2fx\n' "$(echo "$SG_BPS / $WG_BPS" | bc -l)"
