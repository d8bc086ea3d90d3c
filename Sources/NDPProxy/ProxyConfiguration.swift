// A config file as ndp-proxy reads it: which of the three formats it is (npd6.conf, ndppd.conf,
// ndp-proxy's TOML), its rules, and what a careful reader would warn about (host bits masked, an
// idle proxy block, overlapping rules, interfaces that do not exist yet).
import Foundation
import PacketKit
import RouteKit
import SixgateConfig

/// Something in an NDP proxy config file that is accepted but worth the operator's attention.
public typealias NDPConfigWarning = ConfigWarning

/// The three formats ndp-proxy reads.
public enum NDPConfigFormat: String, Sendable, Equatable {
    /// npd6.conf (npd6.conf(5)): `key = value` lines. npd6's reload signal is SIGUSR1.
    case npd6
    /// ndppd.conf (ndppd.conf(5)): `proxy IFACE { rule PREFIX { ... } }`. ndppd reloads on SIGHUP.
    case ndppd
    /// ndp-proxy's own TOML (docs/ndp-proxy.toml.example).
    case toml
}

/// A whole config file, read.
public struct NDPProxyConfiguration: Sendable, Equatable {
    public var path: String
    public var format: NDPConfigFormat
    public var rules: [ProxyRule]
    /// Accepted, but said: the daemon logs each at start and at reload, `--check-config` prints them.
    public var warnings: [NDPConfigWarning]

    /// Warnings about the rules as a whole: prefixes that overlap on one interface (two answers
    /// for one target, or a list that one rule applies and the other does not).
    public var overlapWarnings: [NDPConfigWarning] {
        var out: [NDPConfigWarning] = []
        var seen: [(interface: String, prefix: IPv6Prefix, rule: Int)] = []
        for (n, rule) in rules.enumerated() {
            for p in rule.prefixes + rule.autoPrefixes + rule.ifacePrefixes {
                if let other = seen.first(where: { $0.interface == rule.interface && $0.prefix.overlaps(p) }) {
                    let which = other.rule == n ? "in the same rule" : "in rule \(other.rule + 1)"
                    out.append(NDPConfigWarning(file: path, line: 0, key: nil,
                                                message: "\(rule.interface): \(p) overlaps \(other.prefix) \(which); a target in both is judged by each"))
                }
                seen.append((rule.interface, p, n))
            }
        }
        return out
    }

    /// Warnings for interfaces (outer and inner) that do not exist now in `namespace`: at start the
    /// daemon refuses them, as npd6 and ndppd do; when checking before the interfaces are up this is
    /// only a warning.
    public func missingInterfaceWarnings(namespace: NetworkNamespace = .current) -> [NDPConfigWarning] {
        guard let routes = try? RouteSocket(namespace: namespace) else { return [] }
        var names: [String] = []
        for r in rules { for n in [r.interface] + (r.innerInterface.map { [$0] } ?? []) where !names.contains(n) { names.append(n) } }
        return names.compactMap { name in
            (try? routes.interfaceIndex(name)) == nil
                ? NDPConfigWarning(file: path, line: 0, key: nil, message: "interface \(name) does not exist (yet): the daemon will not start until it does")
                : nil
        }
    }

    /// One line per rule, as the start-up log and `--check-config` print them.
    public var summary: [String] {
        rules.map { r in
            var parts = ["\(r.interface): \(r.mode.rawValue)"]
            if !r.prefixes.isEmpty { parts.append("static \(r.prefixes.map(\.description).joined(separator: " "))") }
            if !r.autoPrefixes.isEmpty { parts.append("auto \(r.autoPrefixes.map(\.description).joined(separator: " "))") }
            if let inner = r.innerInterface { parts.append("iface \(inner) \(r.ifacePrefixes.map(\.description).joined(separator: " "))") }
            if r.prefixes.isEmpty && r.autoPrefixes.isEmpty && r.ifacePrefixes.isEmpty { parts.append("idle (no rule)") }
            if r.listType != .none { parts.append("list \(r.listType.rawValue) (\(r.addresses.count) addresses)") }
            if let store = r.leaseStore { parts.append("lease store \(store)") }
            return parts.joined(separator: ", ")
        }
    }
}

/// Reads a config in any of the three formats.
public enum NDPProxyConfig {
    /// Files larger than this are refused before they are read (docs/limits.md): a config is a few
    /// hundred bytes, and a multi-megabyte one is a mistake or an attack on the parser.
    public static let maximumFileSize = 1 << 20

    /// The text as the parsers want it: without a UTF-8 byte-order mark, with LF line ends (files
    /// edited on Windows or copied from web pages arrive with CRLF).
    public static func normalized(_ text: String) -> String {
        var t = text
        if t.hasPrefix("\u{FEFF}") { t.removeFirst() }
        return t.contains("\r") ? t.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : t
    }

    /// Tells the formats apart: a `.toml` name or a `[table]` line is ndp-proxy's TOML; a line that
    /// starts with one of ndppd's top-level words (`proxy`, `route-ttl`, `address-ttl`) and has no
    /// `=` is ndppd.conf; anything else is npd6.conf (so `interface = proxy` is npd6's).
    public static func format(of text: String, path: String) -> NDPConfigFormat {
        let text = normalized(text)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if path.hasSuffix(".toml") || lines.contains(where: { $0.hasPrefix("[") }) { return .toml }
        let ndppd = lines.contains { line in
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !code.contains("=") else { return false }
            let word = code.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "{" }).first.map(String.init)
            return word == "proxy" || word == "route-ttl" || word == "address-ttl"
        }
        return ndppd ? .ndppd : .npd6
    }

    /// Reads and interprets the file at `path`, refusing one larger than `maximumFileSize`.
    public static func read(_ path: String) throws(NDPConfigError) -> NDPProxyConfiguration {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw NDPConfigError(file: path, line: 0, key: nil, message: errno == ENOENT ? "no such file" : "cannot read: \(String(cString: strerror(errno)))")
        }
        guard Int(st.st_size) <= maximumFileSize else {
            throw NDPConfigError(file: path, line: 0, key: nil, message: "\(st.st_size) bytes: larger than \(maximumFileSize) (a config this big is not one)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw NDPConfigError(file: path, line: 0, key: nil, message: "unreadable") }
        return try interpret(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Interprets `text` as the config file at `path` (which only names it in messages, and a
    /// `.toml` suffix selects TOML).
    public static func interpret(_ text: String, path: String) throws(NDPConfigError) -> NDPProxyConfiguration {
        let text = normalized(text)
        // Nothing but comments and blank lines: say that, not what one format would miss.
        let meaningful = text.split(separator: "\n").contains { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            return !t.isEmpty && !t.hasPrefix("#") && !t.hasPrefix("//") && !t.hasPrefix(";")
        }
        guard meaningful else { throw NDPConfigError(file: path, line: 0, key: nil, message: "no proxy rules configured (the file is empty or only comments)") }
        var warnings: [NDPConfigWarning] = []
        let format = format(of: text, path: path)
        let rules: [ProxyRule]
        switch format {
        case .toml: rules = try NDPProxyTOML.parse(text, path: path)
        case .ndppd: rules = try NDPPDConfig.parse(text, path: path, warnings: &warnings)
        case .npd6: rules = try NPD6Config.parse(text, path: path, warnings: &warnings)
        }
        var configuration = NDPProxyConfiguration(path: path, format: format, rules: rules, warnings: warnings)
        configuration.warnings += configuration.overlapWarnings
        return configuration
    }

    /// The rules of the file at `path` (warnings dropped: use `read` to see them).
    public static func load(_ path: String) throws(NDPConfigError) -> [ProxyRule] { try read(path).rules }

    /// The rules of `text` (warnings dropped: use `interpret` to see them).
    public static func parse(_ text: String, path: String) throws(NDPConfigError) -> [ProxyRule] { try interpret(text, path: path).rules }

}

/// `text` as an error message quotes it: in double quotes, control characters escaped and cut
/// short (with its length said) when it is long (SixgateConfig's `escapedForLog`), so a
/// multi-megabyte token cannot flood a log.
func quotedForMessage(_ text: String, limit: Int = 64) -> String {
    let count = text.utf8.count
    let shown = escapedForLog(text, limit: limit)
    return count > limit ? "\"\(shown)\" (\(count) bytes)" : "\"\(shown)\""
}

/// `2001:db8::1/64` read as ndppd and npd6 read it: the host bits are cleared (`masked` says
/// whether any were set). A bare address is a /128.
func prefixMaskingHostBits(_ text: String) -> (prefix: IPv6Prefix, masked: Bool)? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count), let address = IPv6Address(String(parts[0])) else { return nil }
    var length: UInt8 = 128
    if parts.count == 2 {
        guard let l = UInt8(parts[1]), l <= 128, parts[1].allSatisfy(\.isASCII) else { return nil }
        length = l
    }
    let prefix = IPv6Prefix(containing: address, length: length)
    return (prefix, prefix.network != address)
}
