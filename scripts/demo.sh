#!/usr/bin/env bash
# The main job, as far as Sixgate goes today: build, then capture real traffic between two
# network namespaces and decode it with PacketKit (the pcap-dump example). Later issues turn this
# into a gateway and a client in namespaces with traffic flowing through the tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build --product pcap-dump
if [ "$(id -u)" -eq 0 ]; then
    pcap=$(mktemp --suffix=.pcap)
    trap 'rm -f "$pcap"' EXIT
    bash scripts/capture-real-tools.sh "$pcap"
else
    echo "demo: not root, so no namespaces: decoding the committed capture instead"
    pcap=Tests/PacketKitTests/Fixtures/real-tools.pcap
fi
echo "--- PacketKit's decode of $pcap:"
.build/debug/pcap-dump "$pcap"
echo "--- tcpdump's decode of the same file, for comparison:"
tcpdump -nn -r "$pcap" 2>/dev/null
