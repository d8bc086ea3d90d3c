// NAT44 and forwarding rules through nftables, in a table of Sixgate's own that is created,
// inspected and removed as one unit. Uses the `nft` program (Debian's nftables package) with a
// generated ruleset applied atomically (`nft -f`): a half-applied ruleset cannot happen.
import Foundation
import PacketKit

/// One masquerade rule: traffic from `source` leaving through `outInterface` gets the
/// interface's address (`nft ... ip saddr SOURCE oifname IF masquerade`).
public struct MasqueradeRule: Hashable, Sendable {
    public var source: IPv4Prefix
    public var outInterface: String
    public init(source: IPv4Prefix, outInterface: String) {
        self.source = source
        self.outInterface = outInterface
    }
}

/// Sixgate's nftables table (`table ip NAME`).
public struct NATTable: Sendable {
    /// The table name; only this table is ever touched.
    public var name: String
    public var namespace: NetworkNamespace

    public init(name: String = "sixgate", namespace: NetworkNamespace = .current) {
        self.name = name
        self.namespace = namespace
    }

    /// The ruleset `apply` loads. Deleting and re-creating the table in the same transaction
    /// makes `apply` idempotent (nft 1.0.6 has no `destroy`).
    public func ruleset(_ rules: [MasqueradeRule]) throws(RouteKitError) -> String {
        for r in rules where !SysctlKey.isValidInterfaceName(r.outInterface) || r.outInterface.contains("\"") {
            throw RouteKitError(.invalidArgument, operation: "masquerade", object: "\(r.source) via \(r.outInterface)", detail: "invalid interface name")
        }
        var s = "add table ip \(name)\ndelete table ip \(name)\ntable ip \(name) {\n"
        s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        for r in rules { s += "    ip saddr \(r.source) oifname \"\(r.outInterface)\" masquerade\n" }
        s += "  }\n}\n"
        return s
    }

    /// Replaces the table's contents with `rules`, atomically. The corresponding command is `nft -f`.
    public func apply(_ rules: [MasqueradeRule]) throws(RouteKitError) {
        try nft(["-f", "-"], input: ruleset(rules), operation: "apply")
    }

    /// Whether the table exists. The corresponding command is `nft list table ip NAME`.
    public func exists() throws(RouteKitError) -> Bool { try NFTTable(family: "ip", name: name, namespace: namespace).exists() }

    /// The masquerade rules the table holds now, read back from `nft -j`.
    public func rules() throws(RouteKitError) -> [MasqueradeRule] {
        let text = try nft(["-j", "list", "table", "ip", name], input: nil, operation: "inspect")
        guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let items = json["nftables"] as? [[String: Any]] else { return [] }
        var out = [MasqueradeRule]()
        for item in items {
            guard let rule = item["rule"] as? [String: Any], let expr = rule["expr"] as? [[String: Any]],
                  expr.contains(where: { $0["masquerade"] != nil }) else { continue }
            var source: IPv4Prefix? = nil, iface: String? = nil
            for e in expr {
                guard let m = e["match"] as? [String: Any], let left = m["left"] as? [String: Any] else { continue }
                if let p = left["payload"] as? [String: Any], p["field"] as? String == "saddr",
                   let right = m["right"] as? [String: Any], let pre = right["prefix"] as? [String: Any],
                   let addr = pre["addr"] as? String, let len = pre["len"] as? Int {
                    source = try? IPv4Prefix.parse("\(addr)/\(len)")
                } else if let meta = left["meta"] as? [String: Any], meta["key"] as? String == "oifname" {
                    iface = m["right"] as? String
                }
            }
            if let source, let iface { out.append(MasqueradeRule(source: source, outInterface: iface)) }
        }
        return out
    }

    /// Removes the table; no error if it is already gone. The corresponding command is `nft delete table ip NAME`.
    public func remove() throws(RouteKitError) { try NFTTable(family: "ip", name: name, namespace: namespace).remove() }

    @discardableResult
    private func nft(_ args: [String], input: String?, operation: String) throws(RouteKitError) -> String {
        try runNFT(args, input: input, operation: operation, object: "nftables table ip \(name) in \(namespace)", namespace: namespace)
    }
}

/// One table of Sixgate's own, by family and name: what NAT44's and the filter's tables share.
struct NFTTable {
    var family: String, name: String, namespace: NetworkNamespace

    var object: String { "nftables table \(family) \(name) in \(namespace)" }

    /// Whether it exists. The corresponding command is `nft list table FAMILY NAME`.
    func exists() throws(RouteKitError) -> Bool {
        do {
            try runNFT(["list", "table", family, name], input: nil, operation: "inspect", object: object, namespace: namespace)
            return true
        } catch where error.code == .notFound {
            return false
        }
    }

    /// Removes it; no error if it is already gone (nft 1.0.6 has no `destroy`).
    func remove() throws(RouteKitError) {
        try runNFT(["-f", "-"], input: "add table \(family) \(name)\ndelete table \(family) \(name)\n", operation: "remove", object: object, namespace: namespace)
    }
}

/// Runs `nft ARGS` (inside `namespace`), feeding `input` on standard input; returns standard output.
/// Errors name `object` and carry nft's own message.
@discardableResult
func runNFT(_ args: [String], input: String?, operation: String, object: String, namespace: NetworkNamespace) throws(RouteKitError) -> String {
    var argv = ["nft"] + args
    if case .named(let ns) = namespace { argv = ["nsenter", "--net=/var/run/netns/\(ns)"] + argv }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let inPipe = Pipe(), out = Pipe(), err = Pipe()
    p.standardInput = inPipe
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch {
        throw RouteKitError(.notFound, operation: operation, object: object, detail: "cannot run nft: install Debian's nftables package")
    }
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inPipe.fileHandleForWriting.close()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let message = String(decoding: stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard p.terminationStatus == 0 else {
        let code: RouteKitError.Code
        if message.contains("No such file or directory") { code = .notFound }
        else if message.contains("Operation not permitted") { code = .permissionDenied }
        else if p.terminationStatus == 127 { code = .notFound }
        else { code = .invalidArgument }
        throw RouteKitError(code, operation: operation, object: object, detail: message.isEmpty ? "nft exited \(p.terminationStatus)" : message)
    }
    return String(decoding: stdout, as: UTF8.self)
}
