#!/usr/bin/env bash
# Idle memory of each daemon beside what it replaces, same run, same machine: ndp-proxy beside npd6
# and ndppd on the same rule, sixgate-wg beside wireguard-go on one interface, gatewayd and
# tunnel-client on their example configs (their anchor: wireguard-go plus npd6, what a how-to
# gateway runs). Each runs in a namespace of its own, idle for a few seconds; reported: resident set
# (VmRSS), unique memory (Pss from smaps_rollup), and the binary's size. Rounds interleaved, medians.
# The Sixgate binaries are the packaged ones (scripts/release-build.sh: release, Swift runtime linked
# in, lld with packed relocations). Two more anchors give the floor a Swift daemon starts from: a
# program that prints and sleeps, built the same way (Swift runtime, libstdc++), and the same with
# FoundationEssentials' Data, URL and Date in use. Not a test: figures depend on the machine.
# Usage: sudo bash Benchmarks/footprint.sh [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
source scripts/release-build.sh
release_build ndp-proxy sixgate-wg gatewayd tunnel-client 2>&1 | grep -v "^\[" | tail -4
bin=$(release_bin_path)
dir=$(mktemp -d /tmp/sg-footprint.XXXXXX)
# The floor: the smallest Swift daemons, linked as the packaged binaries are.
printf 'import Glibc\nprint("idle \\(getpid())")\nwhile true { sleep(60) }\n' > "$dir/floor.swift"
printf 'import FoundationEssentials\nimport Glibc\nlet d = Data([1, 2, 3]), u = URL(fileURLWithPath: "/tmp"), t = Date()\nprint("idle \\(d.count) \\(u.path) \\(t.timeIntervalSince1970 > 0)")\nwhile true { sleep(60) }\n' > "$dir/floor-foundation.swift"
for f in floor floor-foundation; do
    swiftc -O -static-stdlib -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --gc-sections "$dir/$f.swift" -o "$dir/swift-$f" 2>&1 | grep -v mktemp || true
done
ns=sg-fp-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    ip link del sgfpwg0 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

fresh() {   # a namespace with eth0 (veth) up and an address on it
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name peer0
    ip -n "$ns" link set eth0 up; ip -n "$ns" link set peer0 up
    ip -n "$ns" -6 addr add 2001:db8::2/64 dev eth0 nodad
}
kb() { awk -v k="$2:" '$1 == k {print $2}' "$1"; }
measure() {   # name, seconds, command...
    local name=$1 wait=$2; shift 2
    fresh
    ip netns exec "$ns" "$@" > "$dir/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    sleep "$wait"
    if ! kill -0 "$pid" 2>/dev/null; then echo "footprint: $name exited: $(tail -3 "$dir/$name.log")" >&2; return 1; fi
    # wireguard-go forks itself into the background: measure the process it left.
    local real=$pid
    if [ "$name" = wireguard-go ]; then real=$(pgrep -n -f "wireguard-go.*sgfpwg0" || echo "$pid"); fi
    echo "$name $(kb /proc/$real/status VmRSS) $(kb /proc/$real/smaps_rollup Pss)" >> "$dir/samples"
    kill "$real" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

printf 'prefix=2001:db8::/64\ninterface=eth0\n' > "$dir/npd6.conf"
printf 'proxy eth0 {\n    rule 2001:db8::/64 {\n        static\n    }\n}\n' > "$dir/ndppd.conf"
sed -e "s|^state_directory = .*|state_directory = \"$dir/state\"|" -e 's|^interface = "sixgate0"|interface = "sgfp0"|' docs/gatewayd.toml.example > "$dir/gatewayd.toml"
mkdir -p "$dir/state"
# tunnel-client idle: its interface up, handshaking toward a gateway that does not answer.
key=$(wg genkey)
printf 'interface = "sgfpc0"\nprivate_key = "%s"\n\n[gateway]\npublic_key = "%s"\nendpoint = "[2001:db8::1]:51820"\nkeepalive = 25\n\n[routes]\nipv6 = "none"\nipv4 = "none"\n' \
    "$key" "$(wg genkey | wg pubkey)" > "$dir/tunnel-client.toml"
chmod 600 "$dir/tunnel-client.toml"
for r in $(seq 1 "$rounds"); do
    measure npd6 3 npd6 -f -l "$dir/npd6.out" -c "$dir/npd6.conf"
    measure ndppd 3 ndppd -c "$dir/ndppd.conf"
    measure ndp-proxy 3 "$bin/ndp-proxy" --config "$dir/npd6.conf" --user root
    measure wireguard-go 3 env WG_PROCESS_FOREGROUND=1 wireguard-go -f sgfpwg0
    measure sixgate-wg 3 "$bin/sixgate-wg" -f sgfpwg0
    measure gatewayd 4 "$bin/gatewayd" --config "$dir/gatewayd.toml" --user root
    measure tunnel-client 3 "$bin/tunnel-client" --config "$dir/tunnel-client.toml" --user root
    measure swift-floor 2 "$dir/swift-floor"
    measure swift-floor-foundation 2 "$dir/swift-floor-foundation"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }
rss() { awk -v n="$1" '$1 == n {print $2}' "$dir/samples" | median; }
pss() { awk -v n="$1" '$1 == n {print $3}' "$dir/samples" | median; }
size() { du -k "$1" | cut -f1; }
echo
echo "idle memory, median of $rounds rounds (KiB); ratio of resident sets to the anchor"
printf '%-22s %9s %9s %11s  %s\n' daemon RSS PSS binary "vs anchor"
for row in "npd6::" "ndppd::" "swift-floor:npd6:$dir/swift-floor" "swift-floor-foundation:npd6:$dir/swift-floor-foundation" "ndp-proxy:npd6:$bin/ndp-proxy" \
           "wireguard-go::" "sixgate-wg:wireguard-go:$bin/sixgate-wg" "tunnel-client:wireguard-go:$bin/tunnel-client" "gatewayd:wireguard-go+npd6:$bin/gatewayd"; do
    IFS=: read -r name anchor path <<< "$row"
    r=$(rss "$name"); p=$(pss "$name")
    b=${path:+$(size "$path")}
    [ -z "$b" ] && b=$(size "$(command -v "$name")")
    ratio=""
    if [ -n "$anchor" ]; then
        a=0; for x in ${anchor//+/ }; do a=$((a + $(rss "$x"))); done
        ratio=$(awk -v r="$r" -v a="$a" -v n="$anchor" 'BEGIN {printf "%.1fx %s", r / a, n}')
    fi
    printf '%-22s %9s %9s %11s  %s\n' "$name" "$r" "$p" "$b" "$ratio"
done
