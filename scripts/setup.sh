#!/usr/bin/env bash
# Installs what Sixgate needs on a fresh Debian 12 machine (as root). Idempotent: packages already
# present are not fetched again. Sourced by demo.sh and test.sh.
set -euo pipefail
SIXGATE_APT_PACKAGES=(
    pkg-config libnl-3-dev libnl-route-3-dev libpcap-dev libssl-dev  # build: the CNetlink, CPcap and CTunnel shims
    libsqlite3-dev  # build: GRDB's SQLite (AddressPool's lease store)
    libmicrohttpd-dev  # build: the /metrics endpoint (SixgateMetrics)
    libpq-dev  # build: libpq, the shared database of a group of gateways (SixgatePostgres)
    iproute2 tcpdump iputils-ping ndisc6 procps nftables util-linux bc ethtool traceroute  # tests and tools: real peers, decoders, nft, offload switches, hops through the firewall
    wireguard-go wireguard-tools iperf3  # TunnelCore interop peers (wireguard-go, wg) and throughput
    npd6 ndppd radvdump radvd  # NDP peers: npd6/ndppd (NDPProxy), radvdump decodes tunnel-client's RAs, radvd for the doctor's ra-daemon check
    tayga  # Translator peer: the NAT64 side-by-side, the interop test and the differential test (TaygaDifferentialTests)
    tshark  # an independent decoder: judges the translator's RFC 4884 and checksum cases (ConformanceTests)
    curl prometheus  # metrics peers: curl scrapes /metrics, promtool (Prometheus's parser) judges the page
    postgresql bird2  # group peers: each test starts its own PostgreSQL (initdb in a temporary folder, a Unix socket there) and BIRD instances (BGP + BFD)
    kea-dhcp6-server dhcpcd-base sqlite3  # prefix peers: kea delegates prefixes (DHCPv6-PD), dhcpcd asks for them and runs dist/dhcpcd-hook-sixgate; sqlite3 reads lease stores
    binutils adduser gzip man-db  # the package test: strip, the sixgate account, man pages (scripts/package.sh, package-test.sh)
)
missing=()
for p in "${SIXGATE_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages with daemons (npd6, ndppd) must not start on the host: they are test peers, run by
    # the tests inside namespaces. policy-rc.d tells invoke-rc.d to leave services alone.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy_added=1; fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now npd6 ndppd radvd tayga prometheus kea-dhcp6-server postgresql bird >/dev/null 2>&1 || true; fi
fi
if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
fi
command -v swift >/dev/null 2>&1 || { echo "setup: no Swift toolchain on PATH (Swift 6.1 or later is needed)" >&2; exit 1; }
