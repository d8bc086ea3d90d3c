// npd6.conf, read as npd6 1.1 documents it (npd6.conf(5)): `key = value` lines, `//` comments,
// prefix/interface pairs in order, and the global options. Unlike npd6, prefixes and addresses
// may be written in compact or full notation ("2001:db8:1:2:", "2001:0db8:0001:0002:",
// "2001:db8:1:2::/64").
import Foundation
import PacketKit
import SixgateConfig

/// A config problem: the file, the line and the key (SixgateConfig's, shared with every config
/// file Sixgate reads).
public typealias NDPConfigError = ConfigError

public enum NPD6Config {
    static let knownKeys: Set<String> = ["prefix", "interface", "ralogging", "listtype", "addrlist", "listlogging",
                                         "collecttargets", "linkoption", "ignorelocal", "routerna", "maxhops", "pollerrorlimit"]

    /// Parses npd6.conf text into one rule per prefix/interface pair, global options applied to each.
    public static func parse(_ text: String, path: String) throws(NDPConfigError) -> [ProxyRule] {
        var warnings: [NDPConfigWarning] = []
        return try parse(text, path: path, warnings: &warnings)
    }

    /// Parses npd6.conf text, appending what it accepted but would warn about to `warnings`.
    public static func parse(_ text: String, path: String, warnings: inout [NDPConfigWarning]) throws(NDPConfigError) -> [ProxyRule] {
        var prefixes: [(IPv6Prefix, Int)] = []
        var interfaces: [(String, Int)] = []
        var listType = ListType.none
        var addresses = Set<IPv6Address>()
        var ignoreLocal = true, routerNA = true, linkOption = false
        var maxHops: UInt8 = 255
        var lineNumber = 0
        func fail(_ key: String?, _ message: String) -> NDPConfigError { NDPConfigError(file: path, line: lineNumber, key: key, message: message) }
        func boolean(_ key: String, _ v: String) throws(NDPConfigError) -> Bool {
            switch v.lowercased() {
            case "true", "on", "yes", "1": return true
            case "false", "off", "no", "0": return false
            default: throw fail(key, "\(quotedForMessage(v)) is not true/false (or on/off)")
            }
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if let c = line.range(of: "//") { line = line[..<c.lowerBound] }
            if let c = line.firstIndex(of: "#") { line = line[..<c] }
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { throw fail(nil, "expected key = value") }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            let k = key.lowercased()
            guard knownKeys.contains(k) else {
                if k == "exprlist" { throw fail(key, "npd6's pattern lists are not supported; list addresses with addrlist") }
                throw fail(key, "unknown key (npd6.conf(5) keys: prefix, interface, listtype, addrlist, linkOption, ignoreLocal, routerNA, maxHops, ...)")
            }
            guard !value.isEmpty else { throw fail(key, "missing value") }
            switch k {
            case "prefix":
                guard let (p, masked) = parsePrefixMaskingHostBits(value) else {
                    throw fail(key, "\(quotedForMessage(value)) is not a prefix (e.g. 2001:db8:1:2: or 2001:db8:1:2::/64)")
                }
                if masked {
                    warnings.append(NDPConfigWarning(file: path, line: lineNumber, key: key, message: "\(value) has host bits set; read as \(p)"))
                }
                prefixes.append((p, lineNumber))
            case "interface":
                guard (1...15).contains(value.utf8.count), !value.contains("/") else { throw fail(key, "\(quotedForMessage(value)) is not an interface name") }
                interfaces.append((value, lineNumber))
            case "listtype":
                guard let t = ListType(rawValue: value.lowercased()) else { throw fail(key, "\(quotedForMessage(value)) is not none, black or white") }
                listType = t
            case "addrlist":
                guard let a = IPv6Address(value) else { throw fail(key, "\(quotedForMessage(value)) is not an IPv6 address") }
                addresses.insert(a)
            case "ignorelocal": ignoreLocal = try boolean(key, value)
            case "routerna": routerNA = try boolean(key, value)
            case "linkoption": linkOption = try boolean(key, value)
            case "maxhops":
                guard let n = UInt8(value) else { throw fail(key, "\(quotedForMessage(value)) is not 0-255") }
                maxHops = n
            case "ralogging", "listlogging":
                _ = try boolean(key, value)   // accepted; ndp-proxy logs through its own log levels
            default:   // collecttargets, pollerrorlimit: numbers, accepted
                guard Int(value) != nil else { throw fail(key, "\(quotedForMessage(value)) is not a number") }
            }
        }
        guard !prefixes.isEmpty else { lineNumber = max(lineNumber, 1); throw fail("prefix", "no prefix given") }
        guard prefixes.count == interfaces.count else {
            lineNumber = (prefixes.count > interfaces.count ? prefixes.last?.1 : interfaces.last?.1) ?? lineNumber
            throw fail(prefixes.count > interfaces.count ? "prefix" : "interface", "every prefix needs its interface (\(prefixes.count) prefixes, \(interfaces.count) interfaces)")
        }
        return zip(prefixes, interfaces).map { p, i in
            var r = ProxyRule(interface: i.0, prefixes: [p.0])
            r.listType = listType; r.addresses = addresses; r.ignoreLocal = ignoreLocal
            r.routerFlag = routerNA; r.linkOption = linkOption; r.hopLimit = maxHops
            return r
        }
    }

    /// "2001:db8:1:2:" (npd6: leading groups, each 1-4 hex digits), "2001:db8:1:2::" or "2001:db8:1:2::/64".
    static func parsePrefix(_ s: String) -> IPv6Prefix? { parsePrefixMaskingHostBits(s)?.prefix }

    /// As `parsePrefix`, with the host bits of "2001:db8:1:2::5/64" cleared (`masked` says so).
    static func parsePrefixMaskingHostBits(_ s: String) -> (prefix: IPv6Prefix, masked: Bool)? {
        if s.contains("/") { return prefixMaskingHostBits(s) }
        return parseShortPrefix(s).map { ($0, false) }
    }

    static func parseShortPrefix(_ s: String) -> IPv6Prefix? {
        if s.hasSuffix("::") {
            guard let a = IPv6Address(s) else { return nil }
            let groups = s.dropLast(2).split(separator: ":").count
            return try? IPv6Prefix(a, length: UInt8(16 * groups))
        }
        guard s.hasSuffix(":") else { return nil }
        let groups = s.dropLast().split(separator: ":", omittingEmptySubsequences: false)
        guard (1...8).contains(groups.count), groups.allSatisfy({ (1...4).contains($0.count) && UInt16($0, radix: 16) != nil }) else { return nil }
        var v: UInt128 = 0
        for (i, g) in groups.enumerated() { v |= UInt128(UInt16(g, radix: 16)!) << UInt128(112 - 16 * i) }
        return try? IPv6Prefix(IPv6Address(rawValue: v), length: UInt8(16 * groups.count))
    }
}
