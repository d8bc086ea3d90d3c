import Foundation
@testable import NDPProxy
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One line of Tests/Fixtures/ndp-proxy/MANIFEST.
struct ProxyFixture: Sendable, CustomTestStringConvertible {
    var file: String
    var interfaces: [String]
    var routes: [(prefix: String, device: String)]
    var ours: Bool, theirs: Bool
    /// target, answered by ndp-proxy, answered by the real daemon.
    var probes: [(target: String, ours: Bool, theirs: Bool)]
    var origin: String
    var testDescription: String { file }

    static let directory = repositoryDirectory + "/Tests/Fixtures/ndp-proxy"

    static var all: [ProxyFixture] {
        guard let text = try? String(contentsOfFile: directory + "/MANIFEST", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line -> ProxyFixture? in
            guard !line.hasPrefix("#") else { return nil }
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 7 else { return nil }
            let routes: [(prefix: String, device: String)] = f[2] == "-" ? [] : f[2].split(separator: " ").map { r in
                let p = r.split(separator: ">"); return (String(p[0]), String(p[1]))
            }
            let probes: [(target: String, ours: Bool, theirs: Bool)] = f[5] == "-" ? [] : f[5].split(separator: " ").map { p in
                let kv = p.split(separator: "="), v = kv[1].split(separator: "/")
                return (String(kv[0]), v[0] == "yes", (v.count > 1 ? v[1] : v[0]) == "yes")
            }
            return ProxyFixture(file: f[0], interfaces: f[1].split(separator: " ").map(String.init), routes: routes,
                                ours: f[3] == "accept", theirs: f[4] == "accept", probes: probes, origin: f[6])
        }
    }
}

struct FixtureManifestTests {
    /// Every file in the folder is in the manifest, and every difference between ndp-proxy and
    /// the real daemon is said in docs/ndp-proxy.md.
    @Test func everyFixtureIsListedAndEveryDifferenceDocumented() throws {
        let fixtures = ProxyFixture.all
        let files = try FileManager.default.contentsOfDirectory(atPath: ProxyFixture.directory).filter { $0 != "MANIFEST" }
        #expect(fixtures.count >= 15)
        #expect(Set(files) == Set(fixtures.map(\.file)), "files without a manifest line, or lines without a file")
        let doc = try String(contentsOfFile: repositoryDirectory + "/docs/ndp-proxy.md", encoding: .utf8)
        for f in fixtures where f.ours != f.theirs || f.probes.contains(where: { $0.ours != $0.theirs }) {
            #expect(doc.contains(f.file), "\(f.file): ndp-proxy and the real daemon differ; docs/ndp-proxy.md must say why")
        }
    }

    /// ndp-proxy's own verdict on every file, without root: the format it is read as and whether it is accepted.
    @Test(arguments: ProxyFixture.all)
    func theParserAgreesWithTheManifest(_ fixture: ProxyFixture) throws {
        let path = ProxyFixture.directory + "/" + fixture.file
        let expected: NDPConfigFormat = fixture.file.hasPrefix("npd6") ? .npd6 : .ndppd
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        #expect(NDPProxyConfig.format(of: text, path: path) == expected)
        let accepted = (try? NDPProxyConfig.read(path)) != nil
        #expect(accepted == fixture.ours, "\(fixture.file): \(fixture.origin)")
    }
}

/// Issue 29: the same file through the real npd6 or ndppd and through ndp-proxy, in a namespace.
@Suite(.enabled(if: isRoot && which("npd6") != nil && which("ndppd") != nil && which("ndisc6") != nil && which("tcpdump") != nil,
                "needs root, npd6, ndppd, ndisc6 and tcpdump (setup.sh installs them)"))
struct FixtureDifferentialTests {
    struct Outcome: Equatable, CustomStringConvertible {
        var accepted: Bool
        var answered: [String: Bool]
        var output: String
        static func == (a: Outcome, b: Outcome) -> Bool { a.accepted == b.accepted && a.answered == b.answered }
        var description: String { "accepted \(accepted), answered \(answered.sorted { $0.key < $1.key })" }
    }

    /// Starts `argv` in a namespace built for `fixture`, and says whether it kept running and
    /// which probes it answered.
    static func outcome(_ fixture: ProxyFixture, _ argv: (String) -> [String]) throws -> Outcome {
        let id = uniqueSuffix()
        let proxy = "sg-fp-\(id)", isp = "sg-fi-\(id)", ispLink = "sgi\(id)"
        let directory = "/tmp/sg-fix-\(id)"
        defer {
            for ns in [proxy, isp] { _ = try? run(["ip", "netns", "del", ns]) }
            try? FileManager.default.removeItem(atPath: directory)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for ns in [proxy, isp] {
            try run(["ip", "netns", "add", ns], check: true)
            try run(["ip", "-n", ns, "link", "set", "lo", "up"], check: true)
            try run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.forwarding=1"], check: true)
        }
        // The fixture's own interface names, made inside the namespace (so eth0 is no clash).
        try run(["ip", "-n", proxy, "link", "add", fixture.interfaces[0], "type", "veth", "peer", "name", ispLink, "netns", isp], check: true)
        for (n, inner) in fixture.interfaces.dropFirst().enumerated() {
            try run(["ip", "-n", proxy, "link", "add", inner, "type", "veth", "peer", "name", "sgh\(n)\(id)"], check: true)
            try run(["ip", "-n", proxy, "link", "set", "sgh\(n)\(id)", "up"], check: true)
        }
        for i in fixture.interfaces { try run(["ip", "-n", proxy, "link", "set", i, "up"], check: true) }
        try run(["ip", "-n", isp, "link", "set", ispLink, "up"], check: true)
        try run(["ip", "-n", isp, "-6", "addr", "add", "2001:db8:5::1/64", "dev", ispLink, "nodad"], check: true)
        for r in fixture.routes { try run(["ip", "-n", proxy, "-6", "route", "add", r.prefix, "dev", r.device], check: true) }
        let config = directory + "/" + fixture.file
        try FileManager.default.copyItem(atPath: ProxyFixture.directory + "/" + fixture.file, toPath: config)
        let daemon = try BackgroundProcess(["ip", "netns", "exec", proxy] + argv(config), captureOutput: true)
        defer { daemon.stop() }
        // ndp-proxy says when it answers; the real daemons get the time they need to refuse.
        if argv("").first?.hasSuffix("ndp-proxy") == true {
            _ = eventually(timeout: 5) { !daemon.process.isRunning || daemon.output.contains("answering on") || daemon.output.contains("no rule") }
            usleep(300_000)
        } else {
            usleep(1_200_000)
        }
        guard daemon.process.isRunning else { return Outcome(accepted: false, answered: [:], output: daemon.output) }
        var answered: [String: Bool] = [:]
        if !fixture.probes.isEmpty {
            let seen = directory + "/seen.txt"
            let dump = try BackgroundProcess(["ip", "netns", "exec", isp, "sh", "-c",
                                              "exec tcpdump -l -nn -i \(ispLink) 'icmp6 and ip6[40] == 136' > \(seen) 2>\(seen).err"])
            defer { dump.stop() }
            _ = eventually(timeout: 5) { ((try? String(contentsOfFile: seen + ".err", encoding: .utf8)) ?? "").contains("listening on") }
            for p in fixture.probes {
                _ = try run(["ip", "netns", "exec", isp, "ndisc6", "-1", "-r", "1", "-w", "400", p.target, ispLink], check: false)
            }
            usleep(400_000)
            dump.stop()
            let lines = (try? String(contentsOfFile: seen, encoding: .utf8)) ?? ""
            for p in fixture.probes { answered[p.target] = lines.contains("tgt is \(p.target),") }
        }
        return Outcome(accepted: daemon.process.isRunning, answered: answered, output: daemon.output)
    }

    @Test(arguments: ProxyFixture.all)
    func ndpProxyAndTheRealDaemonAgreeOrTheDifferenceIsTheDocumentedOne(_ fixture: ProxyFixture) throws {
        let npd6 = fixture.file.hasPrefix("npd6")
        // The command lines the real daemons get, with the binary swapped (npd6's logs to standard error with -l -).
        let ours = try Self.outcome(fixture) { npd6 ? ["\(builtProductsDirectory)/ndp-proxy", "-c", $0, "-l", "-", "-f"] : ["\(builtProductsDirectory)/ndp-proxy", "-c", $0] }
        let theirs = try Self.outcome(fixture) { npd6 ? ["npd6", "-f", "-l", "-", "-c", $0] : ["ndppd", "-c", $0] }
        #expect(ours.accepted == fixture.ours, "ndp-proxy on \(fixture.file): \(ours.output)")
        #expect(theirs.accepted == fixture.theirs, "\(npd6 ? "npd6" : "ndppd") on \(fixture.file): \(theirs.output)")
        for p in fixture.probes {
            if fixture.ours { #expect(ours.answered[p.target] == p.ours, "ndp-proxy, \(fixture.file), \(p.target): \(ours.output)") }
            if fixture.theirs { #expect(theirs.answered[p.target] == p.theirs, "\(npd6 ? "npd6" : "ndppd"), \(fixture.file), \(p.target): \(theirs.output)") }
        }
    }
}
