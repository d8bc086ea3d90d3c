#!/usr/bin/env bash
# The package, installed where it cannot touch this machine: builds it (scripts/package.sh), then in
# a private mount namespace lays an overlay over / (writes go to a tmpfs that vanishes with the
# namespace), chroots into it and, as an operator would:
#   - installs the .deb with dpkg (its dependencies are on this machine already: setup.sh);
#   - checks with ldd that no binary needs libswift* or a toolchain library, and --version;
#   - checks the man pages, completions, units and conffiles are where the package says;
#   - starts gatewayd and ndp-proxy with the packaged units' ExecStart on the packaged configs (the
#     uplink, eth0, made as a veth in a namespace of its own), waits for each to be up, stops it;
#   - starts ndp-proxy with --metrics-listen and scrapes it (libmicrohttpd12, opened at run time);
#   - purges the package and checks nothing of it is left (files, /etc/sixgate, /var/lib/sixgate,
#     the sixgate account).
# Run as root. Prints "package-test: ok" and exits 0, or says what failed and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "package-test: needs root (mount namespaces, chroot)"; exit 1; }
# SIXGATE_DEB=path tests a package built already.
deb=${SIXGATE_DEB:-$(scripts/package.sh "${1:-.build/package}" | tail -1)}
[ -f "$deb" ] || { echo "package-test: no package built"; exit 1; }
echo "package-test: $deb ($(du -h "$deb" | cut -f1))"
id=$$-$RANDOM
ns=sg-pkg-$id
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
# The packaged config's uplink is eth0: made inside the namespace, so no clash with the host's.
ip -n "$ns" link add eth0 type veth peer name sgpk0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set sgpk0 up
ip -n "$ns" -6 addr add 2001:db8::2/64 dev eth0 nodad

export DEB="$deb" NS="$ns"
unshare --mount --propagation private bash -euo pipefail -c '
    top=$(mktemp -d /tmp/sg-pkg-root.XXXXXX)
    mount -t tmpfs tmpfs "$top"
    mkdir -p "$top/upper" "$top/work" "$top/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
    r=$top/root
    mount -t proc proc "$r/proc"
    mount --rbind /sys "$r/sys"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs tmpfs "$r/tmp"
    mount -t tmpfs tmpfs "$r/run"
    mkdir -p "$r/run/netns" && mount --rbind /run/netns "$r/run/netns"
    cp "$DEB" "$r/tmp/sixgate.deb"
    inroot() { chroot "$r" "$@"; }
    fail() { echo "package-test: $*"; exit 1; }

    inroot dpkg -i /tmp/sixgate.deb >/dev/null || fail "dpkg -i failed"
    files=$(dpkg-deb -c "$DEB" | awk '\''$1 !~ /^d/ {print $6}'\'' | sed "s|^\.||")
    for b in /usr/sbin/gatewayd /usr/sbin/tunnel-client /usr/sbin/ndp-proxy /usr/sbin/sixgate-wg /usr/bin/gatewayctl; do
        [ -x "$r$b" ] || fail "$b missing"
        if inroot ldd "$b" | grep -E "libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/|not found"; then fail "$b needs a library from outside Debian"; fi
        inroot "$b" --version | grep -q "(Sixgate) " || fail "$b --version"
        name=$(basename "$b")
        [ -f "$r/usr/share/man/man8/$name.8.gz" ] || fail "man page of $name missing"
        [ -s "$r/usr/share/bash-completion/completions/$name" ] || fail "bash completion of $name missing"
        [ -s "$r/usr/share/zsh/vendor-completions/_$name" ] || fail "zsh completion of $name missing"
    done
    for p in gatewayd.toml tunnel-client.toml; do [ -f "$r/usr/share/man/man5/$p.5.gz" ] || fail "$p(5) missing"; done
    inroot man -l /usr/share/man/man8/ndp-proxy.8.gz 2>/dev/null | grep -q -- "--check-config" || zcat "$r/usr/share/man/man8/ndp-proxy.8.gz" | grep -q "check\\\\-config\|check-config" || fail "ndp-proxy(8) lacks its options"
    for u in gatewayd tunnel-client ndp-proxy; do [ -f "$r/lib/systemd/system/$u.service" ] || fail "$u.service missing"; done
    grep -qx /etc/sixgate/gatewayd.toml "$r/var/lib/dpkg/info/sixgate.conffiles" || fail "gatewayd.toml is not a conffile"
    inroot getent passwd sixgate >/dev/null || fail "no sixgate account"
    [ "$(inroot stat -c %U:%a /var/lib/sixgate)" = "sixgate:700" ] || fail "/var/lib/sixgate is not sixgate 0700: $(inroot stat -c %U:%a /var/lib/sixgate)"

    # A packaged unit as systemd would run it, in the namespace: its Environment= defaults put into
    # ${VAR}, its ExecStartPre, then its ExecStart until READY is logged; then SIGTERM, and STOPPED
    # must be logged within 10 s.
    unit_run() {   # NAME READY STOPPED
        local unit="$r/lib/systemd/system/$1.service" expand="" pre start pid
        # Environment= defaults, as systemd expands them: ${NAME} whole, $NAME split into words.
        for kv in $(sed -n "s/^Environment=//p" "$unit"); do expand="$expand -e s|\${${kv%%=*}}|${kv#*=}|g -e s|\$${kv%%=*}\b|${kv#*=}|g"; done
        pre=$(sed -n "s/^ExecStartPre=//p" "$unit" | sed -e "s|^-||" $expand)
        start=$(sed -n "s/^ExecStart=//p" "$unit" | sed -e "s|^-||" $expand)
        [ -n "$start" ] || fail "$1.service has no ExecStart"
        if [ -n "$pre" ]; then inroot ip netns exec "$NS" $pre >/dev/null || fail "$1: the unit'\''s ExecStartPre failed: $pre"; fi
        chroot "$r" ip netns exec "$NS" $start > "$r/tmp/$1.log" 2>&1 &
        pid=$!   # chroot and ip netns exec both exec: this is the daemon
        trap "kill -KILL $pid 2>/dev/null || true" EXIT
        for _ in $(seq 1 100); do
            grep -q "$2" "$r/tmp/$1.log" 2>/dev/null && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.1
        done
        grep -q "$2" "$r/tmp/$1.log" || { cat "$r/tmp/$1.log"; fail "$1 from its unit did not come up"; }
        kill -TERM $pid
        for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fail "$1 did not stop within 10 s of SIGTERM"; fi
        wait $pid || true
        grep -q "$3" "$r/tmp/$1.log" || { cat "$r/tmp/$1.log"; fail "$1 did not stop cleanly"; }
    }
    unit_run gatewayd "up: sixgate0" "stopping"
    unit_run ndp-proxy "answering on eth0" "stopped"   # the package'\''s ndp-proxy.toml, NDP_PROXY_CONFIG'\''s default
    # metrics_listen: the packaged binary opens libmicrohttpd12 (a Depends) when asked, and serves.
    chroot "$r" ip netns exec "$NS" /usr/sbin/ndp-proxy --config /etc/sixgate/ndp-proxy.toml --metrics-listen 127.0.0.1:9470 > "$r/tmp/metrics.log" 2>&1 &
    pid=$!
    trap "kill -KILL $pid 2>/dev/null || true" EXIT
    for _ in $(seq 1 100); do grep -q "metrics: http" "$r/tmp/metrics.log" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    inroot ip netns exec "$NS" curl -sf --max-time 5 http://127.0.0.1:9470/metrics | grep -q "^sixgate_ndp_solicitations_total" \
        || { cat "$r/tmp/metrics.log"; fail "the packaged ndp-proxy does not serve /metrics"; }
    kill -TERM $pid; wait $pid || true

    inroot dpkg --purge sixgate >/dev/null || fail "dpkg --purge failed"
    for f in $files; do
        if [ -f "$r$f" ] || [ -L "$r$f" ]; then fail "$f left after purge"; fi
    done
    [ ! -e "$r/etc/sixgate" ] || fail "/etc/sixgate left after purge"
    [ ! -e "$r/var/lib/sixgate" ] || fail "/var/lib/sixgate left after purge"
    ! inroot getent passwd sixgate >/dev/null || fail "the sixgate account left after purge"
    echo "package-test: installed, ran gatewayd and ndp-proxy from their units, purged: ok"
'
