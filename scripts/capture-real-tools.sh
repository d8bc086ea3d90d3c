#!/usr/bin/env bash
# Captures real tools' traffic between two network namespaces into a pcap file:
# ping -6, ping, ndisc6 (NS/NA) and rdisc6 (RS), with the kernel answering.
# Usage (root): scripts/capture-real-tools.sh OUT.pcap
# Used by RealCaptureTests (live) and to make Tests/PacketKitTests/Fixtures/real-tools.pcap.
set -euo pipefail
out=${1:?usage: capture-real-tools.sh OUT.pcap}
id=$(printf '%04x%04x' $RANDOM $RANDOM)
L=sg-cap-l-$id R=sg-cap-r-$id LI=sgcl$id RI=sgcr$id
pid=""
# Stops tcpdump by PID: TERM, a bounded wait, then KILL (a parent may have left SIGTERM blocked,
# as Foundation's Process does for its children).
stop_capture() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
cleanup() {
    stop_capture
    ip netns del "$L" 2>/dev/null || true
    ip netns del "$R" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$L"
ip netns add "$R"
ip link add "$LI" netns "$L" type veth peer name "$RI" netns "$R"
for spec in "$L $LI 2001:db8:5::1/64 192.0.2.1/24" "$R $RI 2001:db8:5::2/64 192.0.2.2/24"; do
    set -- $spec
    ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0"
    ip netns exec "$1" ip link set lo up
    ip netns exec "$1" ip link set "$2" up
    ip netns exec "$1" ip -6 addr add "$3" dev "$2" nodad
    ip netns exec "$1" ip addr add "$4" dev "$2"
done
ip netns exec "$R" tcpdump -i "$RI" -U -n -s 512 -w "$out" 'icmp or icmp6' 2>/dev/null &
pid=$!
# Wait (bounded) until tcpdump has opened the file.
for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
[ -s "$out" ] || { echo "tcpdump did not start" >&2; exit 1; }
ip netns exec "$L" ping -6 -c 3 -i 0.2 -W 2 2001:db8:5::2 >/dev/null
ip netns exec "$L" ping -c 3 -i 0.2 -W 2 192.0.2.2 >/dev/null
ip netns exec "$L" ndisc6 -1 -r 2 -w 500 2001:db8:5::2 "$LI" >/dev/null || true
ip netns exec "$L" rdisc6 -1 -r 1 -w 300 "$LI" >/dev/null || true  # no router here: only the RS matters
sleep 0.3
stop_capture
echo "wrote $(stat -c %s "$out") bytes to $out"
