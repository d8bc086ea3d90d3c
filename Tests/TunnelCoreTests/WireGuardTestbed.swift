import Foundation
import RouteKit
import SixgateTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Which WireGuard implementation runs on one side of a testbed.
enum WireGuardImplementation: String, CustomStringConvertible, Sendable {
    case sixgate, wireguardGo
    var description: String { rawValue }
}

/// Two namespaces joined by a veth pair, a WireGuard device in each (sixgate-wg or wireguard-go),
/// configured with the stock `wg` tool over UAPI. Tunnel addresses: left 2001:db8:77::1 and
/// 198.51.100.1, right 2001:db8:77::2 and 198.51.100.2. Outer: 192.0.2.1 and 192.0.2.2.
final class WireGuardTestbed: @unchecked Sendable {
    let pair: NamespacePair
    let leftName: String, rightName: String
    let leftKind: WireGuardImplementation, rightKind: WireGuardImplementation
    var processes: [BackgroundProcess] = []
    let keyDirectory: String
    var leftPublic = "", rightPublic = ""
    static let leftPort = 51820, rightPort = 51821

    var left: String { pair.left }
    var right: String { pair.right }

    init(tag: String, left: WireGuardImplementation, right: WireGuardImplementation,
         leftArguments: [String] = [], rightArguments: [String] = []) throws {
        pair = try NamespacePair(tag: tag)
        let id = String(pair.leftInterface.dropFirst(3))
        leftName = "sgwa\(id)"; rightName = "sgwb\(id)"
        leftKind = left; rightKind = right
        keyDirectory = NSTemporaryDirectory() + "sixgate-wg-\(id)"
        do {
            try FileManager.default.createDirectory(atPath: keyDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try start(left, in: pair.left, name: leftName, extra: leftArguments)
            try start(right, in: pair.right, name: rightName, extra: rightArguments)
            let lk = try key(), rk = try key()
            leftPublic = lk.public; rightPublic = rk.public
            try configure(ns: pair.left, name: leftName, privateKeyFile: lk.file, port: Self.leftPort, peer: rk.public,
                          endpoint: "192.0.2.2:\(Self.rightPort)", allowed: "2001:db8:77::2/128,198.51.100.2/32", v6: "2001:db8:77::1/64", v4: "198.51.100.1/24")
            try configure(ns: pair.right, name: rightName, privateKeyFile: rk.file, port: Self.rightPort, peer: lk.public,
                          endpoint: "192.0.2.1:\(Self.leftPort)", allowed: "2001:db8:77::1/128,198.51.100.1/32", v6: "2001:db8:77::2/64", v4: "198.51.100.2/24")
        } catch {
            destroy()
            throw error
        }
    }

    func start(_ kind: WireGuardImplementation, in ns: String, name: String, extra: [String]) throws {
        let p: BackgroundProcess
        switch kind {
        case .sixgate:
            p = try BackgroundProcess(["ip", "netns", "exec", ns, "\(builtProductsDirectory)/sixgate-wg", "-f", name, "--stats-on-exit"] + extra, captureOutput: true)
        case .wireguardGo:
            p = try BackgroundProcess(["ip", "netns", "exec", ns, "wireguard-go", "-f", name] + extra,
                                      environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"], captureOutput: true)
        }
        processes.append(p)
        let socket = "/var/run/wireguard/\(name).sock"
        guard eventually(timeout: 10, { FileManager.default.fileExists(atPath: socket) }) else {
            throw TestbedError.notStarted("\(kind) \(name): \(p.output)")
        }
    }

    func key() throws -> (file: String, public: String) {
        let priv = try run(["wg", "genkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let file = "\(keyDirectory)/\(uniqueSuffix()).key"
        FileManager.default.createFile(atPath: file, contents: Data((priv + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let pub = try run(["sh", "-c", "wg pubkey < \(file)"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return (file, pub)
    }

    func configure(ns: String, name: String, privateKeyFile: String, port: Int, peer: String, endpoint: String, allowed: String, v6: String, v4: String) throws {
        try pair.exec(ns, ["wg", "set", name, "private-key", privateKeyFile, "listen-port", "\(port)",
                           "peer", peer, "endpoint", endpoint, "allowed-ips", allowed])
        try pair.exec(ns, ["ip", "-6", "addr", "add", v6, "dev", name, "nodad"])
        try pair.exec(ns, ["ip", "addr", "add", v4, "dev", name])
        try pair.exec(ns, ["ip", "link", "set", name, "up"])
    }

    /// `ping` from one side's namespace; returns how many replies came back.
    @discardableResult
    func ping(from ns: String, _ address: String, count: Int = 3, interval: String = "0.2") throws -> Int {
        let r = try pair.exec(ns, ["ping", "-c", "\(count)", "-i", interval, "-W", "2", address], timeout: Double(count) + 15, check: false)
        guard let line = r.stdout.split(separator: "\n").first(where: { $0.contains("received") }),
              let received = line.split(separator: ",").first(where: { $0.contains("received") })?.split(separator: " ").first,
              let n = Int(received) else { return 0 }
        return n
    }

    /// `wg show NAME dump`'s peer line, split on tabs.
    func dump(ns: String, name: String) throws -> [String] {
        let lines = try pair.exec(ns, ["wg", "show", name, "dump"]).stdout.split(separator: "\n")
        return lines.count >= 2 ? lines[1].split(separator: "\t", omittingEmptySubsequences: false).map(String.init) : []
    }

    /// Stops the daemons (by PID) and returns what the Sixgate ones printed.
    @discardableResult
    func stopDaemons() -> [String] {
        for p in processes { p.stop() }
        return processes.map(\.output)
    }

    func destroy() {
        stopDaemons()
        pair.destroy()
        try? FileManager.default.removeItem(atPath: keyDirectory)
        for n in [leftName, rightName] { unlink("/var/run/wireguard/\(n).sock") }
    }
}

enum TestbedError: Error { case notStarted(String), transfer(String) }
