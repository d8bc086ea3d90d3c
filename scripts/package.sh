#!/usr/bin/env bash
# Builds the Debian package of Sixgate: sixgate_VERSION_ARCH.deb in OUTDIR (default .build/package).
#   scripts/package.sh [OUTDIR]
# Release binaries with the Swift runtime linked in (--static-swift-stdlib), so the package needs
# no Swift toolchain: it depends only on Debian's libraries (found with ldd and dpkg -S) and the
# tools the daemons run (nft, ip). It holds the executables, their systemd units (sandboxed;
# disabled until the operator enables one), man pages generated from the argument parsers plus
# gatewayd.toml(5) and tunnel-client.toml(5) from docs/, bash, zsh and fish completions, and the
# example configs in /etc/sixgate (conffiles: an upgrade keeps the operator's edits). postinst makes
# the sixgate system account and /var/lib/sixgate; purge removes both.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-.build/package}")
source scripts/release-build.sh
version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/SixgateVersion/Version.swift)
arch=$(dpkg --print-architecture)
sbin=(gatewayd tunnel-client ndp-proxy sixgate-wg)
bin=(gatewayctl)

release_build "${sbin[@]}" "${bin[@]}"
built=$(release_bin_path)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/sixgate" \
    "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/sixgate/examples" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
for p in "${sbin[@]}"; do install -m 0755 "$built/$p" "$root/usr/sbin/$p"; done
for p in "${bin[@]}"; do install -m 0755 "$built/$p" "$root/usr/bin/$p"; done
strip --strip-unneeded "$root"/usr/sbin/* "$root"/usr/bin/*

# Units: the paths the package installs to.
for unit in dist/*.service; do
    sed -e 's|/usr/local/bin/gatewayctl|/usr/bin/gatewayctl|g' -e 's|/usr/local/bin/|/usr/sbin/|g' "$unit" > "$root/lib/systemd/system/$(basename "$unit")"
done
# Configs: the documented examples, as the files the units read.
install -m 0644 docs/gatewayd.toml.example "$root/etc/sixgate/gatewayd.toml"
install -m 0644 docs/tunnel-client.toml.example "$root/etc/sixgate/tunnel-client.toml"
install -m 0644 docs/ndp-proxy.toml.example "$root/etc/sixgate/ndp-proxy.toml"
for f in docs/*.toml.example; do install -m 0644 "$f" "$root/usr/share/doc/sixgate/examples/"; done
# dhcpcd's hook for prefix_source = "external" (DHCPv6-PD): not active until the operator links it in.
install -d "$root/usr/share/sixgate"
install -m 0755 dist/dhcpcd-hook-sixgate "$root/usr/share/sixgate/dhcpcd-hook-sixgate"
install -m 0644 README.md docs/ndp-proxy.md docs/metrics.md docs/security.md docs/limits.md docs/doctor.md "$root/usr/share/doc/sixgate/"

# Man pages from the argument parsers (swift-argument-parser's generate-manual reads each
# executable's --experimental-dump-help), and the config files' pages from their examples.
swift build -c release --scratch-path "$release_scratch" --product generate-manual >/dev/null 2>&1 || true
manual=$(find "$release_scratch" -type f -perm -u+x \( -name generate-manual-tool -o -name generate-manual \) | head -1)
if [ -z "$manual" ]; then
    swift package --scratch-path "$release_scratch" generate-manual --help >/dev/null 2>&1 || true
    manual=$(find "$release_scratch" -type f -perm -u+x \( -name generate-manual-tool -o -name generate-manual \) | head -1)
fi
[ -n "$manual" ] || { echo "package.sh: cannot build swift-argument-parser's generate-manual" >&2; exit 1; }
date=$(git log -1 --format=%cs 2>/dev/null || date +%F)
for p in "${sbin[@]}" "${bin[@]}"; do
    "$manual" "$built/$p" --section 8 --date "$date" --authors "Sixgate" -o "$root/usr/share/man/man8"
done
for conf in gatewayd tunnel-client; do
    {
        printf '.TH %s.TOML 5 "%s" "Sixgate %s" "File Formats"\n' "$(echo "$conf" | tr a-z A-Z)" "$date" "$version"
        printf '.SH NAME\n%s.toml \\- %s configuration\n' "$conf" "$conf"
        printf '.SH SYNOPSIS\n/etc/sixgate/%s.toml\n' "$conf"
        printf '.SH DESCRIPTION\nTOML. Every key is optional unless marked; the values shown are the defaults unless marked "example". Errors name the file, the line and the key; unknown keys are refused. The annotated file below lists every key (a test keeps it so).\n'
        printf '.SH FILE\n.nf\n'
        sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/" "docs/$conf.toml.example"
        printf '.fi\n.SH SEE ALSO\n%s(8)\n' "$conf"
    } > "$root/usr/share/man/man5/$conf.toml.5"
done
gzip -9n "$root"/usr/share/man/man8/*.8 "$root"/usr/share/man/man5/*.5

for p in "${sbin[@]}" "${bin[@]}"; do
    "$built/$p" --generate-completion-script bash > "$root/usr/share/bash-completion/completions/$p"
    "$built/$p" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_$p"
    "$built/$p" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/$p.fish"
done

# Depends: the Debian packages holding the libraries the binaries link, the one they open when asked
# (libmicrohttpd12, for metrics_listen), and the tools they run.
libs=$(for f in "$root"/usr/sbin/* "$root"/usr/bin/*; do ldd "$f" | awk '/=> \//{print $3}'; done | sort -u)
if echo "$libs" | grep -q libswift; then echo "package.sh: a binary still links the Swift runtime dynamically" >&2; exit 1; fi
depends=$(for l in $libs; do dpkg -S "$(realpath "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null; done | cut -d: -f1 | sort -u | tr '\n' ' ')
depends=$(for d in $depends; do echo "$d"; done | paste -sd, | sed 's/,/, /g')
installed=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: sixgate
Version: $version
Architecture: $arch
Maintainer: Sixgate <sixgate@example.org>
Installed-Size: $installed
Depends: $depends, libc6 (>= 2.36), libmicrohttpd12, adduser, iproute2, nftables
Recommends: wireguard-tools
Suggests: tcpdump, ndisc6
Section: net
Priority: optional
Homepage: https://example.org/sixgate
Description: IPv6 (and IPv4) for hosts that lack it, through a tunnel gateway
 gatewayd runs a WireGuard-compatible tunnel gateway with address leases,
 routes, NAT44, NAT64 and an NDP proxy from one config file; tunnel-client is
 its client; ndp-proxy is a drop-in for npd6 and ndppd (their configs, command
 lines and signals); sixgate-wg a userspace WireGuard device for wg(8).
EOF
(cd "$root" && find etc -type f | sed 's|^|/|') > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd sixgate >/dev/null; then
        adduser --system --group --home /var/lib/sixgate --no-create-home --quiet sixgate
    fi
    install -d -m 0700 -o sixgate -g sixgate /var/lib/sixgate
    if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
fi
exit 0
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -rf /var/lib/sixgate
    rmdir /etc/sixgate 2>/dev/null || true
    if getent passwd sixgate >/dev/null && command -v deluser >/dev/null; then deluser --system --quiet sixgate 2>/dev/null || true; fi
    if getent group sixgate >/dev/null && command -v delgroup >/dev/null; then delgroup --system --quiet sixgate 2>/dev/null || true; fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
exit 0
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    for u in gatewayd tunnel-client ndp-proxy; do systemctl stop "$u.service" >/dev/null 2>&1 || true; done
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm" "$root/DEBIAN/prerm"
mkdir -p "$out"
deb="$out/sixgate_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
