// Reading the firewall: the nftables base chains on a hook (forward, input...) with their policy
// and rules, parsed from `nft -j list ruleset`. iptables on Debian 12 is iptables-nft, so its rules
// appear here too. Read only: Sixgate writes only its own tables (NAT.swift, ForwardFilter.swift).
import Foundation

/// What a rule does when its matches hold.
public enum FilterVerdict: Hashable, Sendable, CustomStringConvertible {
    case accept, drop, reject
    case jump(String), goto(String)
    case `return`, `continue`

    public var description: String {
        switch self {
        case .accept: return "accept"
        case .drop: return "drop"
        case .reject: return "reject"
        case .jump(let c): return "jump \(c)"
        case .goto(let c): return "goto \(c)"
        case .return: return "return"
        case .continue: return "continue"
        }
    }
}

/// One match of a rule: `iifname == "eth0"`, `ct state in {established, related}`, `ip6 saddr == 2001:db8::/64`.
public struct FilterMatch: Hashable, Sendable, CustomStringConvertible {
    /// "iifname", "oifname", "iif", "oif", "ct state", "ip saddr", "meta l4proto"... ("?" for what the
    /// reader does not model).
    public var key: String
    /// "==", "!=", "in"...
    public var op: String
    /// The right-hand side; a set gives several values.
    public var values: [String]

    public init(key: String, op: String, values: [String]) {
        self.key = key
        self.op = op
        self.values = values
    }

    public var description: String {
        "\(key) \(op == "==" || op == "in" ? "" : op + " ")\(values.count == 1 ? values[0] : "{ " + values.joined(separator: ", ") + " }")"
    }
}

/// One rule of a chain: its matches (all must hold) and its final verdict, if any.
public struct FilterRule: Hashable, Sendable, CustomStringConvertible {
    public var matches: [FilterMatch]
    public var verdict: FilterVerdict?
    /// The rule's handle (for `nft delete rule ... handle N`).
    public var handle: Int?

    public init(matches: [FilterMatch], verdict: FilterVerdict?, handle: Int? = nil) {
        self.matches = matches
        self.verdict = verdict
        self.handle = handle
    }

    public var description: String {
        (matches.map(\.description) + [verdict?.description ?? "(no verdict)"]).joined(separator: " ")
    }
}

/// A base chain (one attached to a netfilter hook) with its rules in order.
public struct FilterChain: Hashable, Sendable, CustomStringConvertible {
    /// "ip", "ip6", "inet", "bridge", "arp", "netdev".
    public var family: String
    public var table: String
    public var name: String
    /// "prerouting", "input", "forward", "output", "postrouting"...
    public var hook: String
    /// "accept" or "drop".
    public var policy: String
    public var priority: Int
    public var rules: [FilterRule]

    public init(family: String, table: String, name: String, hook: String, policy: String, priority: Int = 0, rules: [FilterRule] = []) {
        self.family = family
        self.table = table
        self.name = name
        self.hook = hook
        self.policy = policy
        self.priority = priority
        self.rules = rules
    }

    /// Whether the chain sees IPv6 (`ipv6: true`) or IPv4 packets.
    public func applies(ipv6: Bool) -> Bool {
        family == "inet" || family == (ipv6 ? "ip6" : "ip")
    }

    public var description: String { "\(family) \(table) \(name) (hook \(hook), policy \(policy))" }
}

/// The firewall as nftables holds it.
public enum Firewall {
    /// Every base chain on `hook` (e.g. "forward"), every family, with its rules. The
    /// corresponding command is `nft -j list ruleset`. An empty ruleset gives [].
    public static func baseChains(hook: String, in namespace: NetworkNamespace = .current) throws(RouteKitError) -> [FilterChain] {
        let text = try runNFT(["-j", "list", "ruleset"], input: nil, operation: "list", object: "nftables ruleset in \(namespace)", namespace: namespace)
        return parse(text, hook: hook)
    }

    /// Parses `nft -j list ruleset` output (exposed for tests).
    public static func parse(_ json: String, hook: String) -> [FilterChain] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let items = root["nftables"] as? [[String: Any]] else { return [] }
        var chains: [String: FilterChain] = [:]
        var order: [String] = []
        func id(_ o: [String: Any]) -> String {
            "\(o["family"] as? String ?? "")|\(o["table"] as? String ?? "")|\(o["chain"] as? String ?? o["name"] as? String ?? "")"
        }
        for item in items {
            guard let c = item["chain"] as? [String: Any], c["hook"] as? String == hook else { continue }
            let key = id(c)
            chains[key] = FilterChain(family: c["family"] as? String ?? "", table: c["table"] as? String ?? "",
                                      name: c["name"] as? String ?? "", hook: hook, policy: c["policy"] as? String ?? "accept",
                                      priority: c["prio"] as? Int ?? 0)
            order.append(key)
        }
        for item in items {
            guard let r = item["rule"] as? [String: Any] else { continue }
            chains[id(r)]?.rules.append(rule(r))
        }
        return order.compactMap { chains[$0] }
    }

    static func rule(_ r: [String: Any]) -> FilterRule {
        var matches: [FilterMatch] = []
        var verdict: FilterVerdict? = nil
        for e in r["expr"] as? [[String: Any]] ?? [] {
            if let m = e["match"] as? [String: Any] {
                matches.append(FilterMatch(key: key(m["left"]), op: m["op"] as? String ?? "==", values: values(m["right"])))
            } else if e.keys.contains("accept") { verdict = .accept }
            else if e.keys.contains("drop") { verdict = .drop }
            else if e.keys.contains("reject") { verdict = .reject }
            else if e.keys.contains("return") { verdict = .return }
            else if e.keys.contains("continue") { verdict = .continue }
            else if let j = e["jump"] as? [String: Any] { verdict = .jump(j["target"] as? String ?? "?") }
            else if let g = e["goto"] as? [String: Any] { verdict = .goto(g["target"] as? String ?? "?") }
            else if let k = e.keys.first, !ignoredStatements.contains(k) {
                // Statements the reader does not model (limit, xt, set updates...): a condition it cannot judge.
                matches.append(FilterMatch(key: "?", op: k, values: []))
            }
        }
        return FilterRule(matches: matches, verdict: verdict, handle: r["handle"] as? Int)
    }

    /// Statements that neither decide nor filter (a counter, a log line, a mark set).
    static let ignoredStatements: Set<String> = ["counter", "log", "mangle", "notrack", "set", "nflog"]

    static func key(_ left: Any?) -> String {
        guard let l = left as? [String: Any] else { return "?" }
        if let meta = l["meta"] as? [String: Any], let k = meta["key"] as? String { return k }
        if let ct = l["ct"] as? [String: Any], let k = ct["key"] as? String { return "ct " + k }
        if let p = l["payload"] as? [String: Any], let proto = p["protocol"] as? String, let f = p["field"] as? String { return "\(proto) \(f)" }
        return "?"
    }

    static func values(_ right: Any?) -> [String] {
        if let s = right as? String { return [s] }
        if let n = right as? Int { return [String(n)] }
        if let a = right as? [Any] { return a.flatMap { values($0) } }
        if let d = right as? [String: Any] {
            if let set = d["set"] { return values(set) }
            if let p = d["prefix"] as? [String: Any], let a = p["addr"] as? String, let l = p["len"] as? Int { return ["\(a)/\(l)"] }
            if let r = d["range"] as? [Any] { return ["\(values(r).joined(separator: "-"))"] }
        }
        return ["?"]
    }
}
