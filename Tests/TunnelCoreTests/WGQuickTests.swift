import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// sixgate-wg as wg-quick's userspace implementation (issue 21 §5): the real wg-quick brings the
/// interface up with it (sixgate-wg goes to the background once its interface and UAPI socket
/// exist), routes everything through it by fwmark policy routing (which only works if sixgate-wg
/// marks its own UDP as `wg set fwmark` asks), and brings it down again (ip link delete: the
/// daemon notices and leaves). The other end is wireguard-go; underlays IPv4 and IPv6.
@Suite("wg-quick", .enabled(if: isRoot && which("wg-quick") != nil && which("wireguard-go") != nil, "needs root, wg-quick and wireguard-go"))
struct WGQuickTests {
    /// PIDs of sixgate-wg processes serving `interface`: argv[0] ends in sixgate-wg and one argument
    /// is exactly the name (other tests' processes, and words inside paths, never match).
    static func processes(with words: [String]) -> [Int32] {
        let interface = words.last!.trimmingCharacters(in: .whitespaces)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return argv.first?.hasSuffix("sixgate-wg") == true && argv.dropFirst().contains(interface)
        }
    }

    @Test(arguments: ["192.0.2.1", "[2001:db8:5::1]"])
    func wgQuickBringsSixgateWGUpRoutesEverythingAndBringsItDown(_ endpointHost: String) throws {
        let pair = try NamespacePair(tag: "wgq")
        let id = String(pair.leftInterface.dropFirst(3))
        let server = "sgqs\(id)", client = "sgqc\(id)"
        let dir = NSTemporaryDirectory() + "sixgate-wgq-\(id)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var peer: BackgroundProcess?
        defer {
            peer?.stop()
            for pid in Self.processes(with: ["sixgate-wg", client]) { kill(pid, SIGKILL) }
            pair.destroy()
            try? FileManager.default.removeItem(atPath: dir)
            for n in [server, client] { unlink("/var/run/wireguard/\(n).sock") }
        }
        func key() throws -> (private: String, public: String) {
            let priv = try run(["wg", "genkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let pub = try run(["sh", "-c", "echo \(priv) | wg pubkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            return (priv, pub)
        }
        let sk = try key(), ck = try key()
        // The far end: wireguard-go, set up by hand with wg.
        peer = try BackgroundProcess(["ip", "netns", "exec", pair.left, "wireguard-go", "-f", server],
                                     environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"], captureOutput: true)
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: "/var/run/wireguard/\(server).sock") })
        let serverKey = dir + "/server.key"
        FileManager.default.createFile(atPath: serverKey, contents: Data((sk.private + "\n").utf8), attributes: [.posixPermissions: 0o600])
        try pair.exec(pair.left, ["wg", "set", server, "private-key", serverKey, "listen-port", "51820",
                                  "peer", ck.public, "allowed-ips", "198.51.100.2/32,2001:db8:77::2/128"])
        try pair.exec(pair.left, ["ip", "addr", "add", "198.51.100.1/24", "dev", server])
        try pair.exec(pair.left, ["ip", "-6", "addr", "add", "2001:db8:77::1/64", "dev", server, "nodad"])
        try pair.exec(pair.left, ["ip", "link", "set", server, "up"])

        // This end: a wg-quick file that takes every route, as most users' do.
        let conf = "\(dir)/\(client).conf"
        let text = """
            [Interface]
            PrivateKey = \(ck.private)
            Address = 198.51.100.2/24, 2001:db8:77::2/64

            [Peer]
            PublicKey = \(sk.public)
            Endpoint = \(endpointHost):51820
            AllowedIPs = 0.0.0.0/0, ::/0
            PersistentKeepalive = 25

            """
        FileManager.default.createFile(atPath: conf, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        let up = try pair.exec(pair.right, ["env", "WG_QUICK_USERSPACE_IMPLEMENTATION=\(builtProductsDirectory)/sixgate-wg", "wg-quick", "up", conf],
                               timeout: 40, check: false)
        #expect(up.succeeded, "wg-quick up: \(up.stdout)\(up.stderr)")
        #expect((up.stdout + up.stderr).contains("sixgate-wg: \(client) up"), "the foreground half says where it is: \(up.stdout)")
        let daemons = Self.processes(with: ["sixgate-wg", client])
        #expect(daemons.count == 1, "one background process serves \(client): \(daemons)")
        // wg-quick asked for a mark (table 51820 = 0xca6c) and reads it back through UAPI.
        #expect(try pair.exec(pair.right, ["wg", "show", client, "fwmark"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0xca6c")
        let rules = try pair.exec(pair.right, ["ip", "rule"]).stdout
        #expect(rules.contains("not from all fwmark 0xca6c lookup 51820"), "wg-quick's policy routing is in place: \(rules)")
        // Everything (the far end's tunnel addresses included) goes through the tunnel, and the
        // tunnel's own UDP escapes it only because it is marked.
        #expect(eventually(timeout: 15) { (try? pair.exec(pair.right, ["ping", "-c", "1", "-W", "1", "198.51.100.1"], check: false).succeeded) == true }, "IPv4 through sixgate-wg")
        #expect(eventually(timeout: 15) { (try? pair.exec(pair.right, ["ping", "-c", "1", "-W", "1", "2001:db8:77::1"], check: false).succeeded) == true }, "IPv6 through sixgate-wg")
        let route = try pair.exec(pair.right, ["ip", "route", "get", "203.0.113.9"]).stdout
        #expect(route.contains("dev \(client) table 51820"), "the default route is the tunnel's: \(route)")

        let down = try pair.exec(pair.right, ["wg-quick", "down", conf], timeout: 30, check: false)
        #expect(down.succeeded, "wg-quick down: \(down.stdout)\(down.stderr)")
        #expect(eventually(timeout: 5) { Self.processes(with: ["sixgate-wg", client]).isEmpty }, "sixgate-wg left when its interface was deleted")
        #expect(!FileManager.default.fileExists(atPath: "/var/run/wireguard/\(client).sock"), "and removed its UAPI socket")
        #expect(!(try pair.exec(pair.right, ["ip", "rule"]).stdout.contains("0xca6c")), "wg-quick took its rules back")
    }

    /// Without a free name, the background half never gets ready: the foreground half says why
    /// and returns 1 at once instead of leaving wg-quick waiting.
    @Test func aFailedStartIsReportedByTheForegroundHalf() throws {
        let name = "lo"   // exists, and is not a TUN device
        let r = try run(["\(builtProductsDirectory)/sixgate-wg", name], timeout: 20)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("sixgate-wg:") && r.stderr.contains("lo"), "\(r.stderr)")
        // The background half reported its failure and is on its way out (it may outlive the
        // foreground half by a few milliseconds).
        #expect(eventually(timeout: 5) { Self.processes(with: ["sixgate-wg", " lo"]).isEmpty }, "\(Self.processes(with: ["sixgate-wg", " lo"]))")
    }
}
