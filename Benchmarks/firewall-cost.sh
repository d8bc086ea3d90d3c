#!/usr/bin/env bash
# What gatewayd's firewall toward clients costs forwarded traffic, measured against no firewall in
# the same run. Three namespaces: an "internet" host, a router (the gateway's forwarding path:
# kernel forwarding, no tunnel, so only the filter differs) and a client behind it. The client
# downloads from the internet host with iperf3 (one TCP stream: every data packet crosses the
# forward chain toward the client), and pings it, with the router running:
#   off   no table (the anchor)
#   10    the table for 10 clients (FilterTable.ruleset, as gatewayd applies it)
#   10k   the table for 10,000 clients (sets and maps of that size)
# Rows interleaved, ROUNDS rounds, medians. Root only; every flood is bounded (SECONDS each).
# Usage: Benchmarks/firewall-cost.sh [ROUNDS, default 3] [SECONDS per row, default 3]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
seconds=${2:-3}
id=$(printf '%04x%04x' $RANDOM $RANDOM)
inet=sg-fwi-$id rtr=sg-fwr-$id cl=sg-fwc-$id
ipid=""
cleanup() {
    [ -n "$ipid" ] && kill "$ipid" 2>/dev/null || true
    for ns in $inet $rtr $cl; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f /tmp/sg-fw-$id.*
}
trap cleanup EXIT
for ns in $inet $rtr $cl; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add sgfa$id netns $inet type veth peer name sgfb$id netns $rtr
ip link add sgfc$id netns $rtr type veth peer name sgfd$id netns $cl
ip -n $inet link set sgfa$id up; ip -n $rtr link set sgfb$id up; ip -n $rtr link set sgfc$id up; ip -n $cl link set sgfd$id up
ip netns exec $rtr sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n $inet -6 addr add 2001:db8:a::1/64 dev sgfa$id nodad
ip -n $rtr -6 addr add 2001:db8:a::2/64 dev sgfb$id nodad
ip -n $rtr -6 addr add 2001:db8:1::1/64 dev sgfc$id nodad
ip -n $cl -6 addr add 2001:db8:1::4/64 dev sgfd$id nodad
ip -n $inet -6 route add 2001:db8:1::/64 via 2001:db8:a::2
ip -n $cl -6 route add default via 2001:db8:1::1
swift build -c release --product FilterRuleset >/dev/null
table=sgbench$id
.build/release/FilterRuleset $table sgfc$id 10 > /tmp/sg-fw-$id.10
.build/release/FilterRuleset $table sgfc$id 10000 > /tmp/sg-fw-$id.10k
ip netns exec $inet iperf3 -s -D --pidfile /tmp/sg-fw-$id.pid >/dev/null
sleep 0.5
ipid=$(cat /tmp/sg-fw-$id.pid)
ip netns exec $cl ping -c 1 -W 2 2001:db8:a::1 >/dev/null   # neighbours resolved before timing

declare -A rate rtt
for r in $(seq 1 "$rounds"); do
    for mode in off 10 10k; do
        if [ "$mode" = off ]; then
            ip netns exec $rtr nft -f - <<<"add table inet $table
delete table inet $table"
        else
            ip netns exec $rtr nft -f /tmp/sg-fw-$id.$mode
        fi
        mbit=$(ip netns exec $cl iperf3 -c 2001:db8:a::1 -R -t "$seconds" -J | python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))')
        ms=$(ip netns exec $cl ping -c 20 -i 0.05 -q 2001:db8:a::1 | awk -F/ '/rtt/ {print $5}')
        rate[$mode]+="$mbit "; rtt[$mode]+="$ms "
        echo "round $r  $mode: $mbit Mbit/s, ping $ms ms"
    done
done
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' $1; }
off=$(median "${rate[off]}")
echo
echo "medians over $rounds rounds (one TCP stream toward the client, $seconds s a row):"
for mode in off 10 10k; do
    m=$(median "${rate[$mode]}"); p=$(median "${rtt[$mode]}")
    echo "  $mode: $m Mbit/s ($(python3 -c "print('%.2f' % ($m / $off))")x the anchor), ping $p ms"
done
