#!/usr/bin/env bash
# npd6, ndppd and ndp-proxy in the same harness, same run: two namespaces joined by a veth pair, the
# proxy under test in one, NDPFlood in the other sending solicitations for distinct targets inside
# 2001:db8:5::/64 at a bounded rate. Reports answers per second, latency p50/p99, CPU seconds and
# peak memory of the proxy; then the same with 10 invalid solicitations (hop limit 254) per valid
# one, to see who stays responsive. Not a test: numbers depend on the machine.
# Usage: sudo bash Benchmarks/ndp-proxy-side-by-side.sh [RATE=20000] [SECONDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
rate=${1:-20000} seconds=${2:-3}
swift build -c release --product ndp-proxy 2>&1 | tail -1
swift build -c release --package-path Benchmarks --product NDPFlood 2>&1 | tail -1
proxybin=$(swift build -c release --show-bin-path)/ndp-proxy
flood=$(swift build -c release --package-path Benchmarks --show-bin-path)/NDPFlood
id=$$ isp=sg-bn-isp-$$ px=sg-bn-px-$$
dir=$(mktemp -d /tmp/sg-ndpbench.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    ip netns del $isp 2>/dev/null || true; ip netns del $px 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add $isp; ip netns add $px
ip link add sbi$id netns $isp type veth peer name sbp$id netns $px
for ns in $isp $px; do ip -n $ns link set lo up; ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done
ip -n $isp link set sbi$id up; ip -n $px link set sbp$id up
ip -n $isp addr add 2001:db8:5::1/64 dev sbi$id nodad
ip -n $px addr add 2001:db8:5::2/64 dev sbp$id nodad
ip netns exec $px sysctl -qw net.ipv6.conf.all.forwarding=1
sleep 1   # link-local addresses

printf 'prefix=2001:0db8:0005:0000:\ninterface = sbp%s\nlisttype = none\nignoreLocal = true\nrouterNA = true\nmaxHops = 255\n' $id > "$dir/npd6.conf"
printf 'proxy sbp%s {\n    router yes\n    rule 2001:db8:5::/64 {\n        static\n    }\n}\n' $id > "$dir/ndppd.conf"

cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
run() {   # name, command...
    local name=$1; shift
    ip netns exec $px "$@" > "$dir/$name.log" 2>&1 &
    pid=$!
    sleep 1.5
    local ticks; ticks=$(getconf CLK_TCK)
    for invalid in 0 10; do
        local before; before=$(cpu $pid)
        local result; result=$(ip netns exec $isp "$flood" $isp sbi$id "$rate" "$seconds" $invalid)
        local after; after=$(cpu $pid)
        local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
        printf '%-19s invalid/valid %2d: %s; CPU %.2f s, peak RSS %d KiB\n' "$name" $invalid "$result" "$(echo "($after - $before) / $ticks" | bc -l)" "$rss"
    done
    kill $pid; wait $pid 2>/dev/null || true; pid=""
}
echo "ndp-proxy side by side: $rate solicitations/s for $seconds s, same run"
run npd6 npd6 -f -c "$dir/npd6.conf" -l "$dir/npd6.syslog"
run ndppd ndppd -c "$dir/ndppd.conf"
run ndp-proxy "$proxybin" --config "$dir/npd6.conf"
# Its per-source limit (100,000 answers/s by default: the flood has one source) would cap the
# measurement rather than the proxy; raised here to measure capacity.
run ndp-proxy-unlimited "$proxybin" --config "$dir/npd6.conf" --rate-limit 10000000 --rate-limit-per-source 10000000
