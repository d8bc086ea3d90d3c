#!/usr/bin/env bash
# RouteKit's batch path against `ip -batch`, same namespace, same run: install and remove N IPv6
# /128 routes and P proxy neighbour entries. Root only.
# Usage: Benchmarks/routekit-vs-ip-batch.sh [N routes, default 100000] [P proxies, default 10000]
# Proxy entries are kernel-bound for every tool: Linux keeps them in a 16-bucket hash of lists
# (pneigh), so each insert scans O(n) entries. 100,000 of them take about 6 minutes per pass
# with ip -batch and with RouteKit alike on this machine; the default P keeps a run short.
set -euo pipefail
cd "$(dirname "$0")"
n=${1:-100000}
p=${2:-10000}
id=$(printf '%04x%04x' $RANDOM $RANDOM)
ns=sg-bench-$id dev=sgb$id
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -f /tmp/sg-bench-$id.*; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add "$dev" type veth peer name "${dev}p"
ip -n "$ns" link set "$dev" up
ip -n "$ns" link set "${dev}p" up
swift build -c release --product RouteKitBenchmarks >/dev/null
python3 - "$n" "$p" "$dev" "$id" <<'PY'
import sys
n, p, dev, id = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def addr(prefix, i): return "2001:db8:%x::%x:%x" % (prefix, (i + 1) >> 16, (i + 1) & 0xffff)
for name, fmt in [("radd", "route add {a}/128 dev {d} proto 74"), ("rdel", "route del {a}/128 dev {d} proto 74"),
                  ("padd", "neigh add proxy {b} dev {d}"), ("pdel", "neigh del proxy {b} dev {d}")]:
    with open("/tmp/sg-bench-%s.%s" % (id, name), "w") as f:
        for i in range(n if name[0] == "r" else p):
            f.write(fmt.format(a=addr(0xaa, i), b=addr(0xbb, i), d=dev) + "\n")
PY
rate() { python3 -c "import sys; n,t=int(sys.argv[1]),float(sys.argv[2]); print('%d in %d ms = %d /s' % (n, t*1000, n/t))" "$1" "$2"; }
for op in radd rdel padd pdel; do
    t0=$(date +%s.%N)
    ip -n "$ns" -batch /tmp/sg-bench-$id.$op
    t1=$(date +%s.%N)
    label=$(case $op in radd) echo "route add";; rdel) echo "route del";; padd) echo "proxy add";; pdel) echo "proxy del";; esac)
    count=$([ "${op:0:1}" = r ] && echo "$n" || echo "$p")
    echo "ip -batch $label: $(rate "$count" "$(echo "$t1 - $t0" | bc -l)")"
done
.build/release/RouteKitBenchmarks "$ns" "$dev" "$n" "$p"
