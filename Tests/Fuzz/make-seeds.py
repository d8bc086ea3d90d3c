#!/usr/bin/env python3
"""Writes the seed corpora under Corpus/<target>/ (stdlib only; run from anywhere).

Seeds are small, valid inputs of each kind a target reads, so the fuzzer starts deep instead of
at the first length check: real frames from Tests/PacketKitTests/Fixtures/real-tools.pcap, hand
built packets with correct checksums, lease messages, UAPI bodies, the example configs in docs/.
Regression inputs for findings live next to them as regression-* and are never rewritten here.
"""
import os, struct, pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "Corpus"

def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

def csum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def v6(a):
    import ipaddress
    return ipaddress.IPv6Address(a).packed

def v4(a):
    import ipaddress
    return ipaddress.IPv4Address(a).packed

def ipv6(src, dst, nh, payload, hop=64, csum_at=None):
    if csum_at is not None:
        pseudo = src + dst + struct.pack("!I", len(payload)) + b"\0\0\0" + bytes([nh])
        p = bytearray(payload); p[csum_at:csum_at + 2] = b"\0\0"
        c = csum(pseudo + bytes(p)); p[csum_at:csum_at + 2] = struct.pack("!H", c); payload = bytes(p)
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, hop) + src + dst + payload

def ipv4(src, dst, proto, payload, ident=1, flags=0x4000, ttl=64, csum_at=None):
    if csum_at is not None:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(payload))
        p = bytearray(payload); p[csum_at:csum_at + 2] = b"\0\0"
        c = csum(pseudo + bytes(p))
        if proto == 1: c = csum(bytes(p))
        p[csum_at:csum_at + 2] = struct.pack("!H", c); payload = bytes(p)
    h = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), ident, flags, ttl, proto, 0) + src + dst)
    h[10:12] = struct.pack("!H", csum(bytes(h)))
    return bytes(h) + payload

def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data

def tcp(sport, dport, data, flags=0x18):
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0) + data

def eth(dst, src, payload, etype=0x86dd):
    return dst + src + struct.pack("!H", etype) + payload

MAC_A = bytes.fromhex("020000000001"); MAC_B = bytes.fromhex("020000000002")

def ns(target, src=v6("fe80::1"), multicast=True, sllao=True):
    body = struct.pack("!BBHI", 135, 0, 0, 0) + v6(target) + ((b"\x01\x01" + MAC_A) if sllao else b"")
    t = v6(target)
    dst = (v6("ff02::1:ff00:0")[:13] + t[13:]) if multicast else t
    return eth(bytes.fromhex("3333ff") + t[13:] if multicast else MAC_B, MAC_A, ipv6(src, dst, 58, body, hop=255, csum_at=2))

def na(target):
    body = struct.pack("!BBHI", 136, 0, 0, 0x60000000) + v6(target) + b"\x02\x01" + MAC_B
    return eth(MAC_A, MAC_B, ipv6(v6("fe80::2"), v6("fe80::1"), 58, body, hop=255, csum_at=2))

def ra():
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    body += b"\x01\x01" + MAC_A                                              # SLLAO
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + v6("2001:db8:1::")   # PIO
    body += struct.pack("!BBHI", 5, 1, 0, 1420)                               # MTU
    body += struct.pack("!BBHI", 25, 3, 0, 1800) + v6("2001:db8::53")         # RDNSS
    body += struct.pack("!BBH", 38, 2, (1800 // 8) << 3) + v6("64:ff9b::")[:12]   # PREF64
    return eth(bytes.fromhex("333300000001"), MAC_A, ipv6(v6("fe80::1"), v6("ff02::1"), 58, body, hop=255, csum_at=2))

def pcap_records(path):
    d = pathlib.Path(path).read_bytes()
    off = 24
    while off + 16 <= len(d):
        _, _, incl, _ = struct.unpack("<IIII", d[off:off + 16])
        yield d[off + 16: off + 16 + incl]
        off += 16 + incl

# ---- packets and pcap
fixture = ROOT / "Tests/PacketKitTests/Fixtures/real-tools.pcap"
for i, frame in enumerate(pcap_records(fixture)):
    write("fuzz-packets", f"real-{i:02}", frame)
write("fuzz-pcap", "real-tools.pcap", fixture.read_bytes())
pkts = {
    "ns-multicast": ns("2001:db8:1::5"),
    "ns-unicast": ns("2001:db8:1::5", multicast=False),
    "ns-dad": ns("2001:db8:1::5", src=bytes(16), sllao=False),
    "na": na("2001:db8:3::7"),
    "ra-options": ra(),
    "ipv6-udp": ipv6(v6("2001:db8:1::5"), v6("2001:db8:ffff::1"), 17, udp(5000, 53, b"query"), csum_at=6),
    "ipv6-fragment": ipv6(v6("2001:db8:1::5"), v6("2001:db8:ffff::1"), 44, struct.pack("!BBHI", 17, 0, 1, 0x1234) + udp(1, 2, b"x" * 16)),
    "ipv6-hbh-router-alert": ipv6(v6("fe80::1"), v6("ff02::16"), 0, struct.pack("!BB", 58, 0) + b"\x05\x02\x00\x00\x01\x00" + struct.pack("!BBH", 143, 0, 0) + b"\0" * 4),
    "ipv4-tcp": ipv4(v4("192.0.2.1"), v4("198.51.100.1"), 6, tcp(40000, 80, b"GET / HTTP/1.0\r\n\r\n"), csum_at=16),
    "ipv4-icmp-error": ipv4(v4("198.51.100.1"), v4("192.0.2.1"), 1, struct.pack("!BBHHH", 3, 4, 0, 0, 1280) + ipv4(v4("192.0.2.1"), v4("203.0.113.1"), 17, udp(1, 2, b"payload!")), csum_at=2),
}
for name, p in pkts.items():
    write("fuzz-packets", name, p)
w = bytearray(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
for p in pkts.values():
    w += struct.pack("<IIII", 1, 2, len(p), len(p)) + p
write("fuzz-pcap", "built.pcap", bytes(w))

# ---- translator: [mode][segment size u16][packet]; mode bit 0 picks the configuration, bit 1 super-packets
c6, s6 = v6("2001:db8:1::5"), v6("64:ff9b::c633:6401")     # the CLAT's address, 198.51.100.1 in the WKP
seeds = {
    "6to4-udp": ipv6(c6, s6, 17, udp(5000, 53, b"query"), csum_at=6),
    "6to4-tcp": ipv6(c6, s6, 6, tcp(40000, 80, b"data" * 100), csum_at=16),
    "6to4-echo": ipv6(c6, s6, 58, struct.pack("!BBHHH", 128, 0, 0, 7, 1) + b"ping", csum_at=2),
    "6to4-fragment": ipv6(c6, s6, 44, struct.pack("!BBHI", 17, 0, 0x0001, 0x99) + udp(1, 2, b"y" * 64)),
    "4to6-udp": ipv4(v4("198.51.100.1"), v4("192.0.0.2"), 17, udp(53, 5000, b"answer"), csum_at=6),
    "4to6-tcp-df0": ipv4(v4("198.51.100.1"), v4("192.0.0.2"), 6, tcp(80, 40000, b"z" * 1400), flags=0, csum_at=16),
    "4to6-echo-reply": ipv4(v4("198.51.100.1"), v4("192.0.0.2"), 1, struct.pack("!BBHHH", 0, 0, 0, 7, 1) + b"pong", csum_at=2),
    "4to6-fragment": ipv4(v4("198.51.100.1"), v4("192.0.0.2"), 17, udp(1, 2, b"w" * 64), flags=0x2000, csum_at=6),
    "4to6-frag-needed": ipv4(v4("198.51.100.9"), v4("192.0.0.2"), 1, struct.pack("!BBHHH", 3, 4, 0, 0, 1200)
                             + ipv4(v4("192.0.0.2"), v4("198.51.100.1"), 6, tcp(40000, 80, b"")), csum_at=2),
    "6to4-too-big": ipv6(s6, c6, 58, struct.pack("!BBHI", 2, 0, 0, 1280) + ipv6(c6, s6, 17, udp(1, 2, b"q" * 32), csum_at=6), csum_at=2),
}
for name, p in seeds.items():
    write("fuzz-translator", name, b"\x00\x05\x78" + p)
    write("fuzz-translator", name + "-eam", b"\x08\x05\x78" + p)       # pool6 + EAM + RFC 6791 pools (hairpins)
    write("fuzz-translator", name + "-eam-only", b"\x18\x05\x78" + p)  # EAM alone
    if "tcp" in name: write("fuzz-translator", name + "-segmented", b"\x02\x05\x78" + p)

# ---- ICMP extensions (RFC 4884): [mode][type choice][length][inner length u16][inner][extension]
def ext_structure(labels):
    obj = struct.pack("!HBB", 4 + 4 * labels, 1, 1) + b"".join(struct.pack("!I", (16 + i) << 12 | (1 if i == labels - 1 else 0) << 8 | 64) for i in range(labels))
    body = b"\x20\x00\x00\x00" + obj
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]
inner4 = ipv4(v4("192.0.0.2"), v4("198.51.100.1"), 17, udp(5000, 53, b"q" * 92), csum_at=6)
inner6 = ipv6(v6("2001:db8:64::c633:6401"), v6("2001:db8:1::5"), 17, udp(53, 5000, b"a" * 92), csum_at=6)
for name, mode, choice, inner, ext in [("4to6-port-unreachable", 0, 2, inner4, ext_structure(3)), ("4to6-time-exceeded", 0, 5, inner4[:60], ext_structure(1)),
                                       ("4to6-frag-needed", 0, 3, inner4, ext_structure(2)), ("6to4-port-unreachable", 1, 3, inner6, ext_structure(3)),
                                       ("6to4-time-exceeded", 1, 5, inner6[:70], ext_structure(1)), ("6to4-too-big", 1, 4, inner6, ext_structure(1)),
                                       ("4to6-big-extension", 0, 0, inner4, ext_structure(290))]:
    write("fuzz-icmp-extensions", name, bytes([mode, choice, 0]) + struct.pack("!H", len(inner)) + inner + ext)

# ---- NDP handler: [fix checksum][kind 0 outer / 1 inner / 2 expire][length u16][frame]...
def step(kind, frame): return bytes([kind]) + struct.pack("!H", len(frame)) + frame
write("fuzz-ndp", "static", b"\x00" + step(0, ns("2001:db8:1::5")) + step(0, ns("2001:db8:1::6", multicast=False)))
write("fuzz-ndp", "dad", b"\x00" + step(0, ns("2001:db8:1::7", src=bytes(16), sllao=False)))
write("fuzz-ndp", "listed", b"\x00" + step(0, ns("2001:db8:1::bad")))
write("fuzz-ndp", "auto", b"\x00" + step(0, ns("2001:db8:2::5")))
write("fuzz-ndp", "iface", b"\x00" + step(0, ns("2001:db8:3::7")) + step(1, na("2001:db8:3::7")) + step(2, b"") + step(0, ns("2001:db8:3::7")))
write("fuzz-ndp", "fix-checksum", b"\x01" + step(0, ns("2001:db8:1::9")))

# ---- WireGuard: [under load 0xff?] then steps: 0 raw, 1 initiation, 2 transport, 3 device initiates, 4 time passes
init = b"\x01" + b"\x05" + struct.pack("!I", 1) + b"\x00\x00"         # ephemeral 5, index 1, no mutation
transport = b"\x02" + b"\x00" + b"\x00" + b"\x10" + b"hello, gateway!!"   # counter 0, IPv6 UDP, 16 bytes
write("fuzz-wireguard", "handshake-and-data", b"\x00" + init + transport + b"\x02\x01\x00\x04data")
write("fuzz-wireguard", "replay", b"\x00" + init + transport + transport)
write("fuzz-wireguard", "control", b"\x00" + init + b"\x02\x00\x01\x08lease me")
write("fuzz-wireguard", "under-load", b"\xff" + init)
write("fuzz-wireguard", "device-initiates", b"\x00" + b"\x03" + struct.pack("!I", 9) + b"\x07\x00")
write("fuzz-wireguard", "mutated-initiation", b"\x00" + b"\x01\x05" + struct.pack("!I", 2) + b"\x40\x01\x01" + b"\x04" + init)
write("fuzz-wireguard", "raw-cookie", b"\x00\x00\x00\x40" + b"\x03\x00\x00\x00" + b"\x01\x00\x00\x00" + b"\x00" * 56 + b"\x01")

# ---- lease messages
write("fuzz-lease", "request", bytes.fromhex("53470101deadbeef"))
reply = bytes.fromhex("5347010201020304")
reply += b"\x01\x11" + v6("2001:db8:1::4") + b"\x80" + b"\x02\x05" + v4("192.0.2.2") + b"\x20"
reply += b"\x03\x11" + bytes(16) + b"\x00" + b"\x03\x05" + bytes(4) + b"\x00"
reply += b"\x08\x10" + v6("2001:db8:1::3") + b"\x04\x02\x05\x8c" + b"\x05\x10" + v6("2001:db8:ffff::53")
reply += b"\x06\x11" + v6("64:ff9b::") + b"\x60" + b"\x07\x04\x00\x00\x0e\x10" + b"\x0a\x11" + v6("2001:db8:1::5") + b"\x80"
write("fuzz-lease", "reply", reply)
write("fuzz-lease", "refusal", bytes.fromhex("5347010300000009") + b"\x09\x27this key is not enrolled on the gateway")

# ---- UAPI set bodies
k = "e" * 64
write("fuzz-uapi", "device", f"private_key={'a' * 64}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n")
write("fuzz-uapi", "peer", f"public_key={k}\npreshared_key={'b' * 64}\nendpoint=[2001:db8::1]:51820\n"
      "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=2001:db8:1::/64\nallowed_ip=192.0.2.0/24\nprotocol_version=1\n")
write("fuzz-uapi", "remove", f"public_key={k}\nremove=true\n")
write("fuzz-uapi", "update-only", f"public_key={k}\nupdate_only=true\nendpoint=192.0.2.1:51820\n")

# ---- configs
for name in ["gatewayd.toml.example", "tunnel-client.toml.example", "ndp-proxy.toml.example"]:
    write("fuzz-config-toml", name, (ROOT / "docs" / name).read_text())
write("fuzz-config-toml", "nat64-clat", "[ipv6]\nprefix = \"2001:db8:1::/64\"\n[nat64]\nenabled = true\nclat = true\n[clat]\nenabled = true\n")
write("fuzz-config-npd6", "pairs", "prefix = 2001:db8:1:0:\ninterface = eth0\nprefix = 2001:db8:2::/64\ninterface = eth1\n"
      "listtype = white\naddrlist = 2001:db8:1::5\naddrlist = 2001:0db8:0001:0000:0000:0000:0000:0006\n"
      "routerNA = off\nlinkOption = true\nmaxHops = 255\n// a comment\nignoreLocal = true\ncollectTargets = 100\n")
write("fuzz-config-ndppd", "blocks", "route-ttl 5000\nproxy eth0 {\n    router no\n    timeout 500\n    ttl 30000\n"
      "    rule 2001:db8:1::/64 { static }\n    rule 2001:db8:2::/64 {\n        auto\n    }\n    rule 2001:db8:3::/64 {\n        iface eth1\n    }\n}\n"
      "proxy eth1 { rule 2001:db8:4::/64 { auto } }\n")
write("fuzz-config-wgquick", "client", "Address = 192.0.2.2/24, 2001:db8:7::2/64\nDNS = 192.0.2.53\n"
      f"PrivateKey = {'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk='}\nMTU = 1400\nPostUp = echo up %i\nTable = auto\n\n"
      f"[Peer]\nPublicKey = {'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg='}\nEndpoint = [2001:db8:ffff::1]:51820\n"
      "AllowedIPs = 0.0.0.0/0, 2001:db8:ffff::/48\nPersistentKeepalive = 25\n")
# ---- TUN offload: mode byte, virtio header (flags, gso type, hdr_len, gso_size, csum_start, csum_offset; little-endian), packet
def vnet(flags, gso, hdr, size, start, offset):
    return struct.pack("<BBHHHH", flags, gso, hdr, size, start, offset)
def tcp_partial(src, dst, payload, v6_=False, flags=0x18, seq=1000):
    opts = bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
    t = bytearray(struct.pack("!HHIIBBHHH", 40000, 5201, seq, 2000, 8 << 4, flags, 512, 0, 0) + opts + payload)
    pseudo = src + dst + (struct.pack("!I", len(t)) + b"\0\0\0\x06" if v6_ else struct.pack("!BBH", 0, 6, len(t)))
    s = 0
    for i in range(0, len(pseudo), 2): s += (pseudo[i] << 8) | pseudo[i + 1]
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    t[16:18] = struct.pack("!H", s)   # the folded pseudo-header sum, as the kernel leaves it
    return bytes(t)
body = bytes(range(256)) * 12
t4 = tcp_partial(v4("198.51.100.1"), v4("198.51.100.2"), body[:3000])
write("fuzz-offload", "tcp4-super", b"\x00" + vnet(1, 1, 52, 1400, 20, 16) + ipv4(v4("198.51.100.1"), v4("198.51.100.2"), 6, t4))
write("fuzz-offload", "tcp4-super-pieces", b"\x21" + vnet(1, 1, 52, 1000, 20, 16) + ipv4(v4("198.51.100.1"), v4("198.51.100.2"), 6, t4))
t6 = tcp_partial(v6("2001:db8::1"), v6("2001:db8::2"), body[:2900], v6_=True)
write("fuzz-offload", "tcp6-super", b"\x40" + vnet(1, 4, 72, 1380, 40, 16) + ipv6(v6("2001:db8::1"), v6("2001:db8::2"), 6, t6))
u6 = udp(40000, 53, body[:2500])
write("fuzz-offload", "udp6-uso", b"\x00" + vnet(1, 5, 48, 1200, 40, 6) + ipv6(v6("2001:db8::1"), v6("2001:db8::2"), 17, u6))
write("fuzz-offload", "single-csum", b"\x00" + vnet(1, 0, 0, 0, 20, 16) + ipv4(v4("198.51.100.1"), v4("198.51.100.2"), 6, tcp_partial(v4("198.51.100.1"), v4("198.51.100.2"), body[:200])))

print("seeds written under", OUT)
