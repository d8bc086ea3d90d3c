#!/usr/bin/env bash
# Leases of a group in PostgreSQL next to SQLite (Benchmarks/Sources/GroupBenchmarks), and gatewayd's
# memory with 10,000 and 50,000 clients of a group. Starts its own PostgreSQL (Debian's postgresql:
# initdb in a temporary folder, a Unix socket there, fsync on) and removes it. Root (the server runs
# as the postgres account; gatewayd needs a namespace).
#   bash Benchmarks/group-store.sh [ENROLMENTS_PER_ROUND=500] [CLIENTS="10000 50000"]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
per_round=${1:-500}
sizes=${2:-"10000 50000"}
[ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/sg-bench-pg.XXXXXX)
ns=sg-bench-grp-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/data/postmaster.pid" ] && kill -INT "$(head -1 "$work/data/postmaster.pid")" 2>/dev/null || true
    sleep 1
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
chown postgres "$work"
setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$work/data" -k "$work" -c listen_addresses= >"$work/server.log" 2>&1 &
for _ in $(seq 100); do "$bin/pg_isready" -q -h "$work" && break; sleep 0.2; done
psql -X -q -h "$work" -U postgres -c "CREATE DATABASE bench" -c "CREATE DATABASE sixgate" postgres

swift build -c release --package-path "$here" --product GroupBenchmarks >/dev/null
swift build -c release --package-path "$here/.." --product gatewayd >/dev/null
bench=$(swift build -c release --package-path "$here" --show-bin-path)/GroupBenchmarks
gatewayd=$(swift build -c release --package-path "$here/.." --show-bin-path)/gatewayd
mkdir -p "$work/sqlite"
echo "== stores (same run, 5 rounds of $per_round, medians)"
"$bench" stores "host=$work dbname=bench user=postgres" "$work/sqlite" "$per_round"

# gatewayd's resident memory with N clients of a group (the anchor: the same gatewayd with none).
ip netns add "$ns"
ip -n "$ns" link add up0 type veth peer name up1
ip -n "$ns" link set up1 up
ip -n "$ns" link set up0 up
ip -n "$ns" link set lo up
rss() {   # $1: a database name; prints gatewayd's VmRSS in KiB once it is up
    local db=$1 state="$work/state-$1"
    mkdir -p "$state"
    cat > "$work/$db.toml" <<CONF
state_directory = "$state"
interface = "sgbench0"
watch_interval = 0
[uplink]
interface = "up0"
[ipv6]
prefix = "2001:db8:1000::/64"
ndp_proxy = "off"
isp_router = "2001:db8:a::1"
uplink_address = "2001:db8:a::2"
[ipv4]
pool = "100.64.0.0/10"
nat44 = false
[group]
database = "host=$work dbname=$db user=postgres"
name = "bench"
CONF
    ip netns exec "$ns" "$gatewayd" --config "$work/$db.toml" > "$work/$db.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do grep -q "up: sgbench0" "$work/$db.log" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    grep -q "up: sgbench0" "$work/$db.log" || { echo "gatewayd did not come up:"; tail -5 "$work/$db.log"; exit 1; }
    sleep 2
    awk '/VmRSS/ {print $2}' "/proc/$pid/status"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
echo "== gatewayd's memory in a group"
base=$(rss sixgate)
echo "anchor: gatewayd with no clients: $((base / 1024)) MiB"
for n in $sizes; do
    psql -X -q -h "$work" -U postgres -c "CREATE DATABASE g$n" postgres
    "$bench" preload "host=$work dbname=g$n user=postgres" "$n"
    kib=$(rss "g$n")
    awk -v n="$n" -v k="$kib" -v b="$base" 'BEGIN { printf "%6d clients: %d MiB (%.1fx the anchor; %.1f KiB per client above it)\n", n, k / 1024, k / b, (k - b) / n }'
done
