// ndp-proxy's own format (TOML, docs/ndp-proxy.toml.example): one table per rule, any table name,
// every setting of the npd6 and ndppd models plus kernel mode. Errors name file:line:key.
import PacketKit
import SixgateConfig

public enum NDPProxyTOML {
    /// Every key of a rule table (docs/ndp-proxy.toml.example lists each: a test checks).
    public static let ruleKeys: Set<String> = [
        "interface", "mode", "prefixes", "auto", "route_ttl", "list", "addresses", "lease_store",
        "ignore_local", "router", "link_option", "iface", "iface_prefixes", "cache_ttl", "solicit_timeout_ms",
    ]

    public static func parse(_ text: String, path: String) throws(NDPConfigError) -> [ProxyRule] {
        do throws(ConfigError) {
            let f = try ConfigFile(text: text, path: path)
            let known = Set(f.tables.keys.flatMap { t in ruleKeys.map { "\(t).\($0)" } })
            try f.rejectUnknownKeys(known)
            var rules: [ProxyRule] = []
            for (table, line) in f.tables.sorted(by: { $0.value < $1.value }) {
                func key(_ k: String) -> String { "\(table).\(k)" }
                guard let interface = try f.string(key("interface")) else {
                    throw ConfigError(file: path, line: line, key: key("interface"), message: "missing (the interface whose solicitations are answered)")
                }
                func prefixes(_ k: String) throws(ConfigError) -> [IPv6Prefix] {
                    var out: [IPv6Prefix] = []
                    for s in try f.strings(key(k)) ?? [] {
                        guard let p = IPv6Prefix(s) else { throw f.error(key(k), "\(quotedForMessage(s)) is not an IPv6 prefix") }
                        out.append(p)
                    }
                    return out
                }
                var rule = ProxyRule(interface: interface, prefixes: try prefixes("prefixes"))
                rule.autoPrefixes = try prefixes("auto")
                rule.ifacePrefixes = try prefixes("iface_prefixes")
                rule.innerInterface = try f.string(key("iface"))
                if (rule.innerInterface == nil) != rule.ifacePrefixes.isEmpty {
                    throw f.error(key(rule.innerInterface == nil ? "iface_prefixes" : "iface"), "iface and iface_prefixes go together (ask IFACE about targets in these prefixes)")
                }
                if let v = try f.integer(key("cache_ttl"), in: 1...86400) { rule.cacheTTL = Double(v) }
                if let v = try f.integer(key("solicit_timeout_ms"), in: 10...10000) { rule.solicitTimeout = Double(v) / 1000 }
                if let m = try f.string(key("mode")) {
                    guard let mode = ProxyMode(rawValue: m) else { throw f.error(key("mode"), "\(quotedForMessage(m)) is not answer or kernel") }
                    rule.mode = mode
                }
                if let l = try f.string(key("list")) {
                    switch l {
                    case "none": rule.listType = .none
                    case "allow": rule.listType = .white
                    case "deny": rule.listType = .black
                    default: throw f.error(key("list"), "\(quotedForMessage(l)) is not none, allow or deny")
                    }
                }
                for s in try f.strings(key("addresses")) ?? [] {
                    guard let a = IPv6Address(s) else { throw f.error(key("addresses"), "\(quotedForMessage(s)) is not an IPv6 address") }
                    rule.addresses.insert(a)
                }
                rule.leaseStore = try f.string(key("lease_store"))
                if let v = try f.boolean(key("ignore_local")) { rule.ignoreLocal = v }
                if let v = try f.boolean(key("router")) { rule.routerFlag = v }
                if let v = try f.boolean(key("link_option")) { rule.linkOption = v }
                if let v = try f.integer(key("route_ttl"), in: 1...86400) { rule.routeTTL = Double(v) }
                // Combinations that cannot work are refused here, not discovered at run time.
                if rule.prefixes.isEmpty && rule.autoPrefixes.isEmpty && rule.ifacePrefixes.isEmpty {
                    throw ConfigError(file: path, line: line, key: key("prefixes"), message: "no prefixes and no auto prefixes: nothing would be answered")
                }
                if rule.mode == .kernel {
                    guard rule.autoPrefixes.isEmpty else { throw f.error(key("auto"), "kernel mode keeps a list of entries; auto needs answer mode") }
                    guard rule.ifacePrefixes.isEmpty else { throw f.error(key("iface"), "kernel mode keeps a list of entries; iface needs answer mode") }
                    guard !rule.addresses.isEmpty || rule.leaseStore != nil else {
                        throw f.error(key("mode"), "kernel mode needs addresses or lease_store (the entries to keep)")
                    }
                    if rule.listType == .black { throw f.error(key("list"), "kernel mode takes an allow list (the entries), not a deny list") }
                } else if rule.leaseStore != nil {
                    throw f.error(key("lease_store"), "only for mode = \"kernel\"")
                }
                rules.append(rule)
            }
            guard !rules.isEmpty else { throw ConfigError(file: path, line: 1, key: nil, message: "no rule: add a table such as [uplink] with interface and prefixes") }
            return rules
        } catch {
            throw NDPConfigError(file: error.file, line: error.line, key: error.key, message: error.message)
        }
    }
}
