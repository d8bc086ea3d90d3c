#!/usr/bin/env bash
# Soak: gatewayd and several tunnel-clients in network namespaces for a while (default 10 minutes)
# of mixed traffic, with clients joining, leaving and roaming and faults injected, then a verdict:
#   - no crash: every process the script did not kill itself is still running;
#   - RSS flat: gatewayd's and a long-lived client's resident memory grows less than 10% from the
#     baseline (taken once the warm-up and any gatewayd restart are past) to the end;
#   - no lost lease: every client keeps its addresses through everything (a client removed and
#     enrolled again under its name gets the same ones back);
#   - counters consistent: in every quiet round (after recovery from the cycle's fault) echo
#     requests sent = replies received, i.e. no loss that a counter does not explain; gatewayd's
#     drop counters are printed for the rounds with faults.
#   scripts/soak.sh [-d SECONDS] [-c CLIENTS]      (defaults 600 and 4; needs root)
# Faults, one per cycle in turn: SIGKILL of a tunnel-client (restarted), the uplink going down and
# up (the operator's network config re-adding its address and routes), SIGHUP of gatewayd, the
# tunnel's routes flushed, SIGKILL of gatewayd (restarted; first quarter only, before the RSS
# baseline), a client roaming to another address. Every third cycle the last client leaves and
# joins again. Floods are bounded: pings of 20 at 50 per second, iperf3 for 1 s at 20 Mbit/s.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=600 clients=4
while getopts "d:c:" o; do
    case $o in d) duration=$OPTARG ;; c) clients=$OPTARG ;; *) sed -n '2,20p' "$0"; exit 2 ;; esac
done
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (namespaces, TUN)" >&2; exit 1; }
[ "$clients" -ge 3 ] && [ "$clients" -le 8 ] || { echo "soak: 3 to 8 clients" >&2; exit 2; }
source scripts/setup.sh
swift build --product gatewayd 2>&1 | tail -1
swift build --product gatewayctl 2>&1 | tail -1
swift build --product tunnel-client 2>&1 | tail -1
bin=$(swift build --show-bin-path)

id=$$
isp=sg-soak-i$id gw=sg-soak-g$id
state=$(mktemp -d /tmp/sg-soak.XXXXXX)
declare -A pid=() nsof=() addr=()
gwpid="" ipid=""
cleanup() {
    [ -n "${SOAK_HOLD:-}" ] && sleep "$SOAK_HOLD"
    for c in "${!pid[@]}"; do kill -TERM "${pid[$c]}" 2>/dev/null || true; done
    [ -n "$gwpid" ] && kill -TERM "$gwpid" 2>/dev/null || true
    [ -n "$ipid" ] && kill "$ipid" 2>/dev/null || true
    sleep 1
    for c in "${!pid[@]}"; do kill -KILL "${pid[$c]}" 2>/dev/null || true; done
    [ -n "$gwpid" ] && kill -KILL "$gwpid" 2>/dev/null || true
    for ns in $isp $gw $(for i in $(seq 1 "$clients"); do echo sg-soak-c$i-$id; done); do ip netns del "$ns" 2>/dev/null || true; done
    rm -f /var/run/wireguard/sgsoak$id.sock
    # Logs stay for reading; key material does not outlive the run.
    find "$state" -type f \( -name '*.key' -o -name '*.toml' -o -name '*.conf' \) -delete 2>/dev/null || true
    grep -rlsE 'private_?key|PrivateKey' "$state" 2>/dev/null | xargs -r rm -f
    echo "soak: logs kept in $state (keys and client configs removed)"
}
trap cleanup EXIT

x() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for ns in $isp $gw; do ip netns add $ns; x $ns ip link set lo up; x $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done
up=sgsu$id; ispside=sgsi$id
uplink_setup() {   # what the operator's network configuration does for the uplink
    x $gw ip -6 addr replace 2001:db8:1::2/64 dev $up nodad
    x $gw ip addr replace 198.51.100.2/25 dev $up
    x $gw ip -6 route replace default via 2001:db8:1::1 dev $up
    x $gw ip route replace default via 198.51.100.1
}
ip link add $ispside netns $isp type veth peer name $up netns $gw
x $isp ip link set $ispside up; x $gw ip link set $up up
x $isp ip -6 addr add 2001:db8:1::1/64 dev $ispside nodad
x $isp ip addr add 198.51.100.1/25 dev $ispside
x $isp ip -6 addr add 2001:db8:ffff::1/128 dev lo
x $isp ip addr add 203.0.113.1/32 dev lo
uplink_setup
x $isp iperf3 -s -D --pidfile "$state/iperf3.pid" >/dev/null
ipid=$(cat "$state/iperf3.pid")

cat > "$state/gatewayd.toml" <<CONF
state_directory = "$state/gw"
interface = "sgsoak$id"
endpoint = "198.51.100.129:51820"
[uplink]
interface = "$up"
[ipv6]
prefix = "2001:db8:1::/64"
ndp_proxy = "kernel"
[ipv4]
pool = "192.0.2.0/24"
[nat64]
enabled = true
prefix = "2001:db8:64::/96"
pool = "203.0.113.64/26"
interface = "sgsx$id"
CONF
start_gateway() {
    local ups
    ups=$(grep -c "up: sgsoak$id" "$state/gatewayd.log" 2>/dev/null || true)
    ip netns exec $gw "$bin/gatewayd" --config "$state/gatewayd.toml" >> "$state/gatewayd.log" 2>&1 &
    gwpid=$!
    for _ in $(seq 1 100); do
        [ "$(grep -c "up: sgsoak$id" "$state/gatewayd.log" 2>/dev/null || true)" -gt "${ups:-0}" ] && return 0
        sleep 0.1
    done
    echo "soak: gatewayd did not come up" >&2; tail "$state/gatewayd.log" >&2; exit 1
}
start_gateway
ctl() { ip netns exec $gw "$bin/gatewayctl" "$@" --config "$state/gatewayd.toml"; }

# Client i: its own namespace and carrier link; the gateway's side is .1 of a /29, the client .2
# (.3 after roaming); its config is what gatewayctl prints, with its carrier's gateway address.
for i in $(seq 1 "$clients"); do
    ns=sg-soak-c$i-$id; nsof[c$i]=$ns
    base=$((128 + 8 * (i - 1)))
    ip netns add $ns; x $ns ip link set lo up; x $ns sysctl -qw net.ipv6.conf.all.accept_dad=0
    # As systemd sets it: removing an address keeps the others of its subnet (roaming below).
    x $ns sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1
    ip link add sgsg$i-$id netns $gw type veth peer name sgsc$i-$id netns $ns
    x $gw ip link set sgsg$i-$id up; x $ns ip link set sgsc$i-$id up
    x $gw ip addr add 198.51.100.$((base + 1))/29 dev sgsg$i-$id
    x $ns ip addr add 198.51.100.$((base + 2))/29 dev sgsc$i-$id
    addr[c$i]=198.51.100.$((base + 2))
done
enrol() {   # c<i>: a config from gatewayctl, the endpoint on its carrier
    local c=$1 i=${1#c}
    ctl clients add "$c" --format tunnel-client \
        | sed -e "s/interface = \"sixgate0\"/interface = \"sgst$i\"/" -e "s/198.51.100.129:51820/198.51.100.$((128 + 8 * (i - 1) + 1)):51820/" > "$state/$c.toml"
}
start_client() {
    local c=$1
    ip netns exec "${nsof[$c]}" "$bin/tunnel-client" --config "$state/$c.toml" --state-file "$state/$c.json" >> "$state/$c.log" 2>&1 &
    pid[$c]=$!
}
status_of() { "$bin/tunnel-client" status --json --config "$state/$1.toml" --state-file "$state/$1.json" 2>/dev/null || true; }
addresses_of() { status_of "$1" | tr -d ' \n' | grep -o '"addresses":\[[^]]*\]' || true; }
for i in $(seq 1 "$clients"); do enrol c$i; start_client c$i; done

reachable() { x "${nsof[$1]}" ping -6 -c 1 -W 1 2001:db8:ffff::1 >/dev/null 2>&1; }
wait_all() {   # every running client reaches the internet host over IPv6, all asked at once (30 s at most)
    # (An idle WireGuard initiator notices a restarted peer only once it sends: every client is
    # pinged each round, so each one's 15 s "data unanswered" timer starts at the fault.)
    local t0=$SECONDS pending=("${!pid[@]}") left c
    while [ ${#pending[@]} -gt 0 ]; do
        rm -f "$state"/ok.*
        local pings=()
        for c in "${pending[@]}"; do ( reachable "$c" && touch "$state/ok.$c" ) & pings+=($!); done
        for p in "${pings[@]}"; do wait "$p" || true; done   # not a bare wait: the daemons are jobs too
        left=()
        for c in "${pending[@]}"; do [ -e "$state/ok.$c" ] || left+=("$c"); done
        pending=("${left[@]}")
        [ ${#pending[@]} -eq 0 ] && break
        if [ $((SECONDS - t0)) -gt 30 ]; then
            for c in "${pending[@]}"; do
                echo "  $c: not reachable 30 s after the fault"; unrecovered=$((unrecovered + 1))
                { echo "--- $c at $(date +%T):"; x "${nsof[$c]}" wg show all; x $gw wg show all; } >> "$state/unrecovered.log" 2>&1
            done
            return 1
        fi
        sleep 0.5
    done
    echo "  recovered in $((SECONDS - t0)) s"
}
unrecovered=0
wait_all
declare -A lease0=()
for i in $(seq 1 "$clients"); do lease0[c$i]=$(addresses_of c$i); echo "c$i: ${lease0[c$i]}"; done

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
crashes=0 lost=0 quiet_sent=0 quiet_received=0 quiet_rounds=0 quiet_lossy=0
gw_base="" c1_base="" killed_gw=0
churn=c$clients
# One round of traffic from every client at once: IPv6, IPv4 (NAT44), NAT64, and TCP from c1.
traffic() {
    local out="$state/round" c
    rm -f "$out".*
    for c in "${!pid[@]}"; do
        ( s=0 r=0
          for target in "-6 2001:db8:ffff::1" "-4 203.0.113.1" "-6 2001:db8:64::cb00:7101"; do
              set -- $target
              line=$( { x "${nsof[$c]}" ping "$1" -c 20 -i 0.02 -W 1 "$2" 2>/dev/null || true; } | grep -o '[0-9]* packets transmitted, [0-9]* received' | head -1 || true)
              [ -n "$line" ] || line="20 packets transmitted, 0 received"
              ts=$(echo "$line" | awk '{print $1}') tr=$(echo "$line" | awk '{print $4}')
              s=$((s + ts)); r=$((r + tr))
              [ "$ts" -eq "$tr" ] || echo "$c $2: $tr of $ts" >> "$state/lossy.log"
          done
          echo "$s $r" > "$out.$c" ) &
    done
    x "${nsof[c1]}" iperf3 -c 2001:db8:ffff::1 -t 1 -b 20M >/dev/null 2>&1 || echo "  iperf3 from c1 failed" >&2
    wait
    cat "$out".* | awk '{s += $1; r += $2} END {print s, r}'
}
faults=(kill-client uplink-flap sighup route-flush kill-gatewayd roam)
start=$SECONDS cycle=0
while [ $((SECONDS - start)) -lt "$duration" ]; do
    cycle=$((cycle + 1)); elapsed=$((SECONDS - start))
    fault=${faults[$(( (cycle - 1) % ${#faults[@]} ))]}
    [ "$fault" = kill-gatewayd ] && [ "$elapsed" -gt $((duration / 4)) ] && fault=sighup
    echo "cycle $cycle (${elapsed} s): $fault"
    case $fault in
        kill-client)
            victim=c$(( 2 + RANDOM % (clients - 2) ))   # never c1 (its RSS is tracked), never the churned one
            kill -KILL "${pid[$victim]}"; wait "${pid[$victim]}" 2>/dev/null || true
            start_client "$victim" ;;
        uplink-flap)
            x $gw ip link set $up down; sleep 0.5; x $gw ip link set $up up; uplink_setup
            x $isp ip -6 neigh flush dev $ispside ;;
        sighup) kill -HUP "$gwpid" ;;
        route-flush) x $gw ip -6 route flush dev sgsoak$id ;;
        kill-gatewayd)
            kill -KILL "$gwpid"; wait "$gwpid" 2>/dev/null || true; killed_gw=1
            start_gateway; gw_base="" ;;
        roam)
            victim=c$(( 2 + RANDOM % (clients - 2) )); i=${victim#c}; base=$((128 + 8 * (i - 1)))
            old=${addr[$victim]}; new=198.51.100.$((base + 2)); [ "$old" = "$new" ] && new=198.51.100.$((base + 3))
            x "${nsof[$victim]}" ip addr add "$new/29" dev sgsc$i-$id
            x "${nsof[$victim]}" ip addr del "$old/29" dev sgsc$i-$id
            addr[$victim]=$new; echo "  $victim: $old -> $new" ;;
    esac
    wait_all || true
    if [ $((cycle % 3)) -eq 0 ]; then
        echo "  $churn leaves and joins again"
        kill -TERM "${pid[$churn]}"; wait "${pid[$churn]}" 2>/dev/null || true; unset "pid[$churn]"
        ctl clients remove "$churn" >/dev/null
        enrol "$churn"; start_client "$churn"
        wait_all || true
    fi
    read -r s r < <(traffic)
    quiet_rounds=$((quiet_rounds + 1)); quiet_sent=$((quiet_sent + s)); quiet_received=$((quiet_received + r))
    if [ "$s" -ne "$r" ]; then
        quiet_lossy=$((quiet_lossy + 1))
        echo "  traffic: $r of $s replies; gatewayd drops: $(ctl status --json 2>/dev/null | tr -d ' \n' | grep -o '"dropped[A-Za-z]*":[1-9][0-9]*' | tr '\n' ' ')"
    else
        echo "  traffic: $r of $s replies"
    fi
    # Processes the script did not kill must still run; addresses must not have changed.
    kill -0 "$gwpid" 2>/dev/null || { echo "  gatewayd died: $(tail -3 "$state/gatewayd.log")"; crashes=$((crashes + 1)); start_gateway; gw_base=""; }
    for c in "${!pid[@]}"; do
        kill -0 "${pid[$c]}" 2>/dev/null || { echo "  $c died: $(tail -3 "$state/$c.log")"; crashes=$((crashes + 1)); start_client "$c"; }
    done
    for i in $(seq 1 "$clients"); do
        now=$(addresses_of c$i)
        if [ -n "$now" ] && [ "$now" != "${lease0[c$i]}" ]; then echo "  c$i: addresses changed: ${lease0[c$i]} -> $now"; lost=$((lost + 1)); fi
    done
    if [ "$elapsed" -ge $((duration / 4)) ]; then
        [ -z "$gw_base" ] && gw_base=$(rss "$gwpid") && echo "  RSS baseline: gatewayd $gw_base kB"
        [ -z "$c1_base" ] && c1_base=$(rss "${pid[c1]}") && echo "  RSS baseline: c1 $c1_base kB"
    fi
done
gw_end=$(rss "$gwpid"); c1_end=$(rss "${pid[c1]}")
growth() { [ "${1:-0}" -gt 0 ] && echo $(( ($2 - $1) * 100 / $1 )) || echo 0; }
gwg=$(growth "$gw_base" "$gw_end"); c1g=$(growth "$c1_base" "$c1_end")
echo
echo "soak: $cycle cycles in $((SECONDS - start)) s, $clients clients"
echo "  crashes: $crashes"
echo "  RSS: gatewayd $gw_base -> $gw_end kB (${gwg}%), tunnel-client c1 $c1_base -> $c1_end kB (${c1g}%)"
echo "  leases changed: $lost"
echo "  quiet rounds: $quiet_rounds, echo requests $quiet_sent, replies $quiet_received, rounds with loss $quiet_lossy, not recovered within 30 s: $unrecovered"
echo "  gatewayd counters: $(ctl status --json 2>/dev/null | tr -d ' \n' | grep -o '"counters":{[^}]*}' | head -c 1500)"
fail=0
[ "$crashes" -eq 0 ] || fail=1
[ "$gwg" -lt 10 ] && [ "$c1g" -lt 10 ] || fail=1
[ "$lost" -eq 0 ] || fail=1
[ "$quiet_sent" -eq "$quiet_received" ] && [ "$unrecovered" -eq 0 ] || fail=1
[ "$fail" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $fail
