import Foundation
import SixgateTestSupport
import Testing

/// The executables' argument and config handling, and the examples.
@Suite("Executables")
struct ExecutableTests {
    static var binDir: String { builtProductsDirectory }

    @Test func tunnelClientNamesTheFileLineAndKeyOfABadConfig() throws {
        let missing = try run(["\(Self.binDir)/tunnel-client", "--config", "/nonexistent.toml", "--check-config"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent.toml"), "\(missing.stderr)")
        let path = NSTemporaryDirectory() + "tc-\(uniqueSuffix()).toml"
        defer { unlink(path) }
        try "private_key = \"\(String(repeating: "A", count: 43))=\"\n[gateway]\npublic_key = \"\(String(repeating: "B", count: 43))=\"\nendpoint = \"198.51.100.1:51820\"\n[routes]\nipv6 = [\"10.0.0.0/8\"]\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try run(["\(Self.binDir)/tunnel-client", "--config", path, "--check-config"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("\(path):6: routes.ipv6:"), "\(bad.stderr)")
        try "private_key = \"\(String(repeating: "A", count: 43))=\"\n[gateway]\npublic_key = \"\(String(repeating: "B", count: 43))=\"\nendpoint = \"gw.example.net:51820\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let good = try run(["\(Self.binDir)/tunnel-client", "--config", path, "--check-config"])
        #expect(good.status == 0 && good.stdout.contains("is valid"), "\(good.stderr)")
    }

    @Test func ndpProxyRefusesANonPositiveRateLimit() throws {
        let path = NSTemporaryDirectory() + "np-\(uniqueSuffix()).conf"
        defer { unlink(path) }
        try "prefix=2001:db8:5::\ninterface=lo\n".write(toFile: path, atomically: true, encoding: .utf8)
        for flag in ["--rate-limit", "--rate-limit-per-source"] {
            let r = try run(["\(Self.binDir)/ndp-proxy", "--config", path, flag, "0"])
            #expect(r.status != 0 && r.stderr.contains("\(flag) must be a positive number"), "\(r.stderr)")
        }
    }

    @Test func pcapDumpExamplePrintsOneLinePerPacket() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PacketKitTests/Fixtures/real-tools.pcap").path
        let r = try run(["\(Self.binDir)/pcap-dump", fixture], check: true)
        let lines = r.stdout.split(separator: "\n")
        let tcpdump = try run(["tcpdump", "-nn", "-r", fixture], check: true).stdout.split(separator: "\n")
        #expect(lines.count == tcpdump.count)
        #expect(lines.contains { $0.contains("IP6 2001:db8:5::1 > 2001:db8:5::2: ICMP6, echo request") })
        #expect(lines.contains { $0.contains("neighbor solicitation, who has 2001:db8:5::2") })
        #expect(!lines.contains { $0.contains("bad") || $0.contains("malformed") })
        let bad = try run(["\(Self.binDir)/pcap-dump", "/nonexistent.pcap"])
        #expect(bad.status == 66 && bad.stderr.contains("/nonexistent.pcap"))
        // A record whose microseconds are out of range (it trapped): said, skipped, read on.
        var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture)))
        file[24 + 4] = 0xff; file[24 + 5] = 0xff; file[24 + 6] = 0xff; file[24 + 7] = 0xff
        let path = NSTemporaryDirectory() + "sg-badts-\(uniqueSuffix()).pcap"
        defer { unlink(path) }
        try Data(file).write(to: URL(fileURLWithPath: path))
        let skipped = try run(["\(Self.binDir)/pcap-dump", path])
        #expect(skipped.status == 0 && skipped.stderr.contains("record 1 skipped: pcap: timestamp fraction out of range"), "\(skipped)")
        #expect(skipped.stdout.split(separator: "\n").count == lines.count - 1)
    }
}

@Suite("The ip6-route example", .enabled(if: isRoot, "needs root for network namespaces"))
struct IP6RouteExampleTests {
    @Test func printsTheSameRoutesAsIp() throws {
        let pair = try NamespacePair(tag: "ex6")
        defer { pair.destroy() }
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "default", "via", "2001:db8:5::2", "metric", "5"])
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "2001:db8:77::/64", "dev", pair.leftInterface, "proto", "74"])
        let ours = try run(["\(ExecutableTests.binDir)/ip6-route", pair.left], check: true).stdout
        let ip = try pair.exec(pair.left, ["ip", "-6", "route"]).stdout
        // Same routes in the same order: compare destination, gateway and device of each line.
        func key(_ line: Substring) -> String {
            let w = line.split(separator: " ")
            var parts = [String(w[0])]
            if let v = w.firstIndex(of: "via") { parts.append(String(w[v + 1])) }
            if let d = w.firstIndex(of: "dev") { parts.append(String(w[d + 1])) }
            return parts.joined(separator: " ")
        }
        #expect(ours.split(separator: "\n").map(key) == ip.split(separator: "\n").map(key), "ours:\n\(ours)\nip:\n\(ip)")
        #expect(ours.contains("2001:db8:77::/64 dev \(pair.leftInterface) proto sixgate"))
        #expect(ours.contains("default via 2001:db8:5::2 dev \(pair.leftInterface)"))
    }
}

@Suite("The tunnel-pair example", .enabled(if: isRoot, "needs root for network namespaces and TUN"))
struct TunnelPairExampleTests {
    @Test func carriesPingsBothWaysAndReportsTheHandshake() throws {
        let pair = try NamespacePair(tag: "ext")
        defer { pair.destroy() }
        let example = try BackgroundProcess(["\(ExecutableTests.binDir)/tunnel-pair", pair.left, "2001:db8:5::1",
                                             pair.right, "2001:db8:5::2", "6"], captureOutput: true)
        defer { example.stop() }
        #expect(eventually(timeout: 10) { example.output.contains("tunnel-pair: up") }, "output: \(example.output)")
        let v6 = try pair.exec(pair.left, ["ping", "-c", "2", "-W", "2", "2001:db8:77::2"], check: false)
        let v4 = try pair.exec(pair.right, ["ping", "-c", "2", "-W", "2", "198.51.100.1"], check: false)
        #expect(v6.succeeded, "\(v6.stdout)")
        #expect(v4.succeeded, "\(v4.stdout)")
        #expect(eventually(timeout: 15) { !example.process.isRunning })
        let out = example.output
        #expect(out.contains("A: handshake completed with ") || out.contains("B: handshake completed with "), "output: \(out)")
        #expect(out.contains("\nA: ") && out.contains("\nB: "), "output: \(out)")
        #expect(example.process.terminationStatus == 0)
    }

    @Test func tunnelClientWarnsWhenItsPrivateKeyIsReadableByOthers() throws {
        let path = NSTemporaryDirectory() + "tc-keymode-\(uniqueSuffix()).toml"
        defer { unlink(path) }
        try "private_key = \"CIJx29+eG5dL7tON0xo8a1/qEowfiuzQERthkk/3yHs=\"\n[gateway]\npublic_key = \"gw83nm0gZnLZDhWWkc3vkx2MYjjpoOwu891hkDqPTyE=\"\nendpoint = \"198.51.100.1:51820\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let loose = try run(["\(builtProductsDirectory)/tunnel-client", "--config", path, "--check-config"])
        #expect(loose.succeeded && loose.stderr.contains("warning: \(path) holds a private key and is accessible to other users (mode 644): chmod 600 \(path)"), "\(loose)")
        chmod(path, 0o600)
        let tight = try run(["\(builtProductsDirectory)/tunnel-client", "--config", path, "--check-config"])
        #expect(tight.succeeded && !tight.stderr.contains("warning"), "\(tight)")
    }

    /// The systemd units as systemd reads them (every directive known, the binaries there).
    @Test(.enabled(if: which("systemd-analyze") != nil, "needs systemd-analyze"))
    func theSystemdUnitsVerify() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let dir = NSTemporaryDirectory() + "sg-units-\(uniqueSuffix())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for unit in ["gatewayd", "ndp-proxy", "tunnel-client"] {
            let text = try String(contentsOfFile: "\(root)/dist/\(unit).service", encoding: .utf8)
            #expect(text.contains("User=sixgate") && text.contains("NoNewPrivileges=yes") && text.contains("SystemCallFilter=") && text.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW"))
            try text.replacingOccurrences(of: "/usr/local/bin", with: builtProductsDirectory).write(toFile: "\(dir)/\(unit).service", atomically: true, encoding: .utf8)
            let r = try run(["systemd-analyze", "verify", "\(dir)/\(unit).service"])
            #expect(r.succeeded && !(r.stdout + r.stderr).contains("\(unit).service:"), "\(unit): \(r)")
        }
    }
}

@Suite("The ndp-config example")
struct NDPConfigExampleTests {
    @Test func saysTheFormatTheRulesAndTheWarnings() throws {
        let fixture = repositoryDirectory + "/Tests/Fixtures/ndp-proxy/ndppd-two-blocks.conf"
        let out = try run(["\(ExecutableTests.binDir)/ndp-config", fixture], check: true).stdout
        #expect(out.contains("\(fixture): ndppd format"))
        #expect(out.contains("  eth0: answer, static 2001:db8:5::/112 2001:db8:5::1:0/112"), "\(out)")
        #expect(out.contains("\(fixture):7: proxy: warning: a second proxy eth0 block (the first is on line 1)"), "\(out)")
        let bad = try run(["\(ExecutableTests.binDir)/ndp-config", repositoryDirectory + "/Tests/Fixtures/ndp-proxy/npd6-comments-only.conf"])
        #expect(bad.status == 1 && bad.stdout.contains("no proxy rules configured"))
    }
}

@Suite("The npt-map example")
struct NPTMapExampleTests {
    @Test func mapsTheRFCsExampleBothWaysAndRefusesStrangers() throws {
        let out = try run(["\(ExecutableTests.binDir)/npt-map", "fd01:203:405::/48", "2001:db8:1::/48", "fd01:203:405:1::1234", "2001:db8:1:d550::1234"], check: true).stdout
        #expect(out == "fd01:203:405:1::1234 -> 2001:db8:1:d550::1234\n2001:db8:1:d550::1234 -> fd01:203:405:1::1234\n", "\(out)")
        let bad = try run(["\(ExecutableTests.binDir)/npt-map", "fd01:203:405::/48", "2001:db8:1::/48", "2001:db8:9::1"])
        #expect(bad.status == 1 && bad.stdout.contains("is in neither"))
    }
}

@Suite("The engine-pair example")
struct EnginePairExampleTests {
    @Test func handshakesDeliversBothWaysAndRekeys() throws {
        let out = try run(["\(ExecutableTests.binDir)/engine-pair"], check: true).stdout
        #expect(out.components(separatedBy: "handshake message (type 1").count - 1 == 2, "an initiation at start and at the rekey: \(out)")
        #expect(out.components(separatedBy: "packet of 48 bytes delivered").count - 1 == 3, "\(out)")
        #expect(out.hasSuffix("a: 2 handshakes initiated, 2 packets sent; b: 2 received\n"), "\(out)")
    }
}

@Suite("The fair-queue example")
struct FairQueueExampleTests {
    @Test func thePingGoesSecondAndAStandingQueueIsMarkedAndDropped() throws {
        let out = try run(["\(ExecutableTests.binDir)/fair-queue"], check: true).stdout
        #expect(out.contains("order out: bulk, ping, bulk, bulk, ... (ping is #2 of 31)"), "\(out)")
        let numbers = out.split(separator: "\n").last.map { $0.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) } } ?? []
        // "standing queue of 20 ms for 500 ms: M marked (first at F ms), D dropped"
        #expect(numbers.count == 5 && numbers[2] > 0 && numbers[3] >= 100 && numbers[4] > 0, "marks after the 100 ms interval, and drops: \(out)")
    }
}

@Suite("gatewayctl pcap decode")
struct PcapDecodeTests {
    /// A pcap file of raw IPv4: a UDP datagram, a record whose microseconds are out of range, the
    /// datagram again.
    func file() throws -> String {
        let udp: [UInt8] = [0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
                            0x13, 0x88, 0, 53, 0, 13, 0, 0, 0x68, 0x65, 0x6c, 0x6c, 0x6f]
        var ip = udp
        let sum = stride(from: 0, to: 20, by: 2).reduce(UInt32(0)) { $0 + (UInt32(ip[$1]) << 8 | UInt32(ip[$1 + 1])) }
        let folded = ~UInt16(truncatingIfNeeded: (sum & 0xffff) + (sum >> 16))
        ip[10] = UInt8(folded >> 8); ip[11] = UInt8(folded & 0xff)
        func record(_ p: [UInt8], micro: UInt32) -> [UInt8] {
            var r: [UInt8] = []
            for v in [UInt32(1_800_000_000), micro, UInt32(p.count), UInt32(p.count)] { r += withUnsafeBytes(of: v.littleEndian, Array.init) }
            return r + p
        }
        var bytes: [UInt8] = []
        for v: UInt32 in [0xa1b2_c3d4] { bytes += withUnsafeBytes(of: v.littleEndian, Array.init) }
        bytes += [2, 0, 4, 0] + Array(repeating: 0, count: 8) + withUnsafeBytes(of: UInt32(65535).littleEndian, Array.init) + withUnsafeBytes(of: UInt32(101).littleEndian, Array.init)
        bytes += record(ip, micro: 5) + record(ip, micro: 2_000_000) + record(ip, micro: 7)
        let path = NSTemporaryDirectory() + "sg-decode-\(uniqueSuffix()).pcap"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func printsEveryLayerAndSkipsABadRecordSayingSo() throws {
        let path = try file()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["\(ExecutableTests.binDir)/gatewayctl", "pcap", "decode", path])
        #expect(r.succeeded, "\(r.stderr)")
        #expect(r.stdout.contains("1 1800000000.000005000 33 bytes (33 captured)"), "\(r.stdout)")
        #expect(r.stdout.contains("  ip: ip.hdr_len=20 ip.dsfield=0x00 ip.len=33 ip.id=0x0001"), "\(r.stdout)")
        #expect(r.stdout.contains("ip.checksum.status=1") && r.stdout.contains("ip.src=192.0.2.1 ip.dst=198.51.100.2"))
        #expect(r.stdout.contains("  udp: udp.srcport=5000 udp.dstport=53 udp.length=13"), "\(r.stdout)")
        #expect(r.stdout.contains("2 1800000000.000007000"), "the record after the bad one is read")
        #expect(r.stderr.contains("a record skipped") && r.stderr.contains("timestamp"), "\(r.stderr)")
        let j = try run(["\(ExecutableTests.binDir)/gatewayctl", "pcap", "decode", "--json", path], check: true)
        let packets = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [[String: Any]])
        #expect(packets.count == 2)
        let layers = packets.first?["layers"] as? [[String: Any]]
        #expect(layers?.map { $0["name"] as? String } == ["ip", "udp", "data"])
        #expect(((layers?[1]["fields"] as? [[String: String]])?.first { $0["name"] == "udp.dstport" })?["value"] == "53")
        let missing = try run(["\(ExecutableTests.binDir)/gatewayctl", "pcap", "decode", "/nonexistent.pcap"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent.pcap"), "\(missing.stderr)")
    }
}

@Suite("The metrics-endpoint example", .enabled(if: which("curl") != nil, "needs curl"))
struct MetricsEndpointExampleTests {
    @Test func servesItsPageUntilSIGTERM() throws {
        let p = try BackgroundProcess(["\(ExecutableTests.binDir)/metrics-endpoint", "127.0.0.1:0"], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("serving http://127.0.0.1:") }, "\(p.output)")
        let url = try #require(p.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        let page = try run(["curl", "-sS", "--max-time", "5", url], check: true).stdout
        #expect(page.contains("example_scrapes_total 1"), "\(page)")
        #expect(page.contains("example_load_average{window=\"15m\"}"), "\(page)")
        kill(p.process.processIdentifier, SIGTERM)
        p.process.waitUntilExit()
        #expect(p.process.terminationStatus == 0)
    }
}

@Suite("--version")
struct VersionTests {
    /// Every executable says the release and the commit it was built from (issue 26).
    @Test(arguments: ["gatewayd", "gatewayctl", "tunnel-client", "sixgate-wg", "ndp-proxy"])
    func everyExecutableNamesTheReleaseAndTheCommit(_ name: String) throws {
        let r = try run(["\(ExecutableTests.binDir)/\(name)", "--version"], check: true)
        let head = try run(["git", "-C", repositoryDirectory, "rev-parse", "--short=12", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(r.stdout.hasPrefix("\(name) (Sixgate) 0.2.0 (commit "), "\(r.stdout)")
        if head.count == 12 {
            #expect(r.stdout.contains("(commit \(head)"), "built from this checkout: \(r.stdout)")
        } else {
            #expect(r.stdout.contains("(commit unknown)"), "\(r.stdout)")
        }
    }
}
