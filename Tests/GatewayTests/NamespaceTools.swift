import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SixgateTestSupport

/// What the gateway testbeds share: a veth pair between two namespaces, a command in one, and a
/// stock wireguard-go client set up wg-quick style from the config gatewayctl prints.
enum NamespaceTools {
    /// A veth pair `aName` in `a` and `bName` in `b`, both up.
    static func link(_ a: String, _ aName: String, _ b: String, _ bName: String) throws {
        try run(["ip", "link", "add", aName, "netns", a, "type", "veth", "peer", "name", bName, "netns", b], check: true)
        try exec(a, ["ip", "link", "set", aName, "up"])
        try exec(b, ["ip", "link", "set", bName, "up"])
    }

    @discardableResult
    static func exec(_ ns: String, _ argv: [String], timeout: Double = 30, check: Bool = true) throws -> ProcessResult {
        try run(["ip", "netns", "exec", ns] + argv, timeout: timeout, check: check)
    }

    /// wireguard-go `name` in `ns` as wg-quick would set it up from `config`: the device, `wg set`
    /// (the key written under `keyDirectory`), the addresses, the MTU; no routes (the caller's).
    /// `endpoint` replaces the config's Endpoint. Returns the process and the config's fields.
    static func startWireGuardGo(in ns: String, name: String, config: String, keyDirectory: String,
                                 endpoint override: String? = nil) throws -> (process: BackgroundProcess, fields: [String: String]) {
        var fields: [String: String] = [:]
        for line in config.split(separator: "\n") where line.contains(" = ") && !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            fields[parts[0]] = parts[1]
        }
        guard let priv = fields["PrivateKey"], let pub = fields["PublicKey"], let endpoint = override ?? fields["Endpoint"],
              let allowed = fields["AllowedIPs"], let addresses = fields["Address"] else {
            throw TransferError("incomplete client config:\n\(config)")
        }
        let p = try BackgroundProcess(["ip", "netns", "exec", ns, "wireguard-go", "-f", name],
                                      environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"], captureOutput: true)
        guard eventually(timeout: 10, { FileManager.default.fileExists(atPath: "/var/run/wireguard/\(name).sock") }) else {
            p.stop()
            throw TransferError("wireguard-go \(name) did not start: \(p.output)")
        }
        do {
            try configure(ns, name, fields, priv: priv, pub: pub, endpoint: endpoint, allowed: allowed, addresses: addresses, keyDirectory: keyDirectory)
        } catch {
            p.stop()
            unlink("/var/run/wireguard/\(name).sock")
            throw error
        }
        return (p, fields)
    }

    private static func configure(_ ns: String, _ name: String, _ fields: [String: String], priv: String, pub: String, endpoint: String,
                                  allowed: String, addresses: String, keyDirectory: String) throws {
        let keyFile = keyDirectory + "/\(name).key"
        FileManager.default.createFile(atPath: keyFile, contents: Data((priv + "\n").utf8), attributes: [.posixPermissions: 0o600])
        try exec(ns, ["wg", "set", name, "private-key", keyFile, "peer", pub, "endpoint", endpoint,
                      "allowed-ips", allowed.replacingOccurrences(of: " ", with: ""), "persistent-keepalive", fields["PersistentKeepalive"] ?? "0"])
        for a in addresses.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            try exec(ns, a.contains(":") ? ["ip", "-6", "addr", "add", a, "dev", name, "nodad"] : ["ip", "addr", "add", a, "dev", name])
        }
        try exec(ns, ["ip", "link", "set", name, "mtu", fields["MTU"] ?? "1420", "up"])
    }
}
