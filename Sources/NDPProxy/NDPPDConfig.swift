// ndppd.conf, as ndppd 0.2.x documents it (ndppd.conf(5) and ndppd.conf-dist): `proxy IFACE { ...
// rule PREFIX { ... } }` blocks with `router`, `timeout`, `ttl` and the rule methods `static`, `auto`
// and `iface`, plus the global `route-ttl`; also read: `address-ttl`, `autowire`, `keepalive`,
// `retries`, `promiscuous`, `deadtime` and the rule option `autovia`. `#` starts a comment.
// Where ndppd is lenient ndp-proxy is too, and says so: host bits in a rule are cleared, a proxy
// block without rules runs idle, a rule without a method is `static` (ndppd 0.2.1's default), two
// blocks for one interface are merged; each with a warning naming the line.
import Foundation
import PacketKit
import SixgateConfig

public enum NDPPDConfig {
    struct Token { var text: String; var line: Int }

    static func tokens(_ text: String) -> [Token] {
        var out: [Token] = []
        var line = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            line += 1
            var l = Substring(raw)
            if let c = l.firstIndex(of: "#") { l = l[..<c] }
            var word = ""
            for ch in l {
                if ch == "{" || ch == "}" || ch == ";" {
                    if !word.isEmpty { out.append(Token(text: word, line: line)); word = "" }
                    if ch != ";" { out.append(Token(text: String(ch), line: line)) }
                } else if ch == " " || ch == "\t" || ch == "\r" {
                    if !word.isEmpty { out.append(Token(text: word, line: line)); word = "" }
                } else {
                    word.append(ch)
                }
            }
            if !word.isEmpty { out.append(Token(text: word, line: line)) }
        }
        return out
    }

    /// Parses ndppd.conf text into one rule per `proxy` block.
    public static func parse(_ text: String, path: String) throws(NDPConfigError) -> [ProxyRule] {
        var warnings: [NDPConfigWarning] = []
        return try parse(text, path: path, warnings: &warnings)
    }

    /// Parses ndppd.conf text into one rule per interface, appending what it accepted but would
    /// warn about to `warnings`.
    public static func parse(_ text: String, path: String, warnings: inout [NDPConfigWarning]) throws(NDPConfigError) -> [ProxyRule] {
        let t = tokens(text)
        var i = 0
        var routeTTL = 30.0
        var rules: [ProxyRule] = []
        var blockLines: [String: Int] = [:]
        func warn(_ at: Int, _ key: String?, _ message: String) {
            warnings.append(NDPConfigWarning(file: path, line: at < t.count ? t[at].line : (t.last?.line ?? 1), key: key, message: message))
        }
        func fail(_ at: Int, _ key: String?, _ message: String) -> NDPConfigError {
            NDPConfigError(file: path, line: at < t.count ? t[at].line : (t.last?.line ?? 1), key: key, message: message)
        }
        func value(_ key: String) throws(NDPConfigError) -> String {
            guard i + 1 < t.count, !["{", "}"].contains(t[i + 1].text) else { throw fail(i, key, "missing value") }
            i += 2
            return t[i - 1].text
        }
        func number(_ key: String) throws(NDPConfigError) -> Double {
            let v = try value(key)
            guard let n = Int(v), n >= 0 else { throw fail(i - 1, key, "\(quotedForMessage(v)) is not a number of milliseconds") }
            return Double(n) / 1000
        }
        func yesNo(_ key: String) throws(NDPConfigError) -> Bool {
            let v = try value(key)
            switch v { case "yes", "true", "on": return true; case "no", "false", "off": return false
            default: throw fail(i - 1, key, "\(quotedForMessage(v)) is not yes or no") }
        }
        func open(_ key: String) throws(NDPConfigError) {
            guard i < t.count, t[i].text == "{" else { throw fail(i, key, "expected {") }
            i += 1
        }
        while i < t.count {
            let key = t[i].text
            switch key {
            case "route-ttl": routeTTL = try number(key)
            case "address-ttl": _ = try number(key)
            case "proxy":
                let iface = try value(key)
                let blockAt = i - 2
                guard (1...15).contains(iface.utf8.count), !iface.contains("/") else { throw fail(i - 1, key, "\(quotedForMessage(iface)) is not an interface name") }
                var rule = ProxyRule(interface: iface, prefixes: [])
                try open(key)
                while i < t.count, t[i].text != "}" {
                    let k = t[i].text
                    switch k {
                    case "router": rule.routerFlag = try yesNo(k)
                    case "timeout": rule.solicitTimeout = try number(k)   // given in milliseconds, as ndppd
                    case "ttl": rule.cacheTTL = try number(k)
                    // Read and checked; ndp-proxy answers NS itself and does not forward, so these
                    // change nothing (docs/ndp-proxy.md).
                    case "autowire", "promiscuous", "keepalive": _ = try yesNo(k)
                    case "retries", "deadtime": _ = try number(k)
                    case "rule":
                        let text = try value(k)
                        let ruleAt = i - 2
                        guard let (prefix, masked) = prefixMaskingHostBits(text) else {
                            throw fail(i - 1, k, "\(quotedForMessage(text)) is not an IPv6 address or prefix")
                        }
                        if masked { warn(i - 1, k, "\(text) has host bits set; read as \(prefix), as ndppd does") }
                        var method: String?
                        var inner: String?
                        if i < t.count, t[i].text == "{" {
                            i += 1
                            var methods: [String] = []
                            while i < t.count, t[i].text != "}" {
                                let m = t[i].text
                                switch m {
                                case "static", "auto": methods.append(m); i += 1
                                case "iface":
                                    methods.append(m)
                                    inner = try value(m)
                                // ndppd 0.2.5's autovia (yes/no): answer with the route's gateway;
                                // ndp-proxy answers for the target itself, so it is read and checked only.
                                case "autovia": _ = try yesNo(m)
                                default: throw fail(i, m, "unknown rule option (static, auto, iface or autovia)")
                                }
                            }
                            guard i < t.count else { throw fail(i, k, "missing }") }
                            i += 1
                            guard methods.count <= 1 else { throw fail(i - 1, k, "static, auto and iface are mutually exclusive") }
                            method = methods.first
                        }
                        if method == nil {
                            warn(ruleAt, k, "rule \(prefix) names no method (static, auto or iface): static, as ndppd 0.2.1 did; ndppd 0.2.4 refuses this, so write it")
                        }
                        switch method ?? "static" {
                        case "auto": rule.autoPrefixes.append(prefix)
                        case "iface":
                            if let other = rule.innerInterface, other != inner {
                                throw fail(i - 1, k, "one proxy block asks one inner interface (\(other) already, not \(inner ?? ""))")
                            }
                            rule.innerInterface = inner
                            rule.ifacePrefixes.append(prefix)
                        default: rule.prefixes.append(prefix)
                        }
                    default: throw fail(i, k, "unknown proxy option (router, timeout, ttl, rule, autowire, keepalive, retries, promiscuous, deadtime)")
                    }
                }
                guard i < t.count else { throw fail(i, key, "missing } for proxy \(iface)") }
                i += 1
                if let first = blockLines[iface], let n = rules.firstIndex(where: { $0.interface == iface }) {
                    // ndppd accepts two blocks for one interface; one responder per interface
                    // answers for both blocks' rules, with the first block's options.
                    warn(blockAt, key, "a second proxy \(iface) block (the first is on line \(first)): its rules are merged into the first"
                         + (rule.routerFlag != rules[n].routerFlag || rule.cacheTTL != rules[n].cacheTTL || rule.solicitTimeout != rules[n].solicitTimeout
                            ? "; its router, ttl and timeout differ and the first block's are used" : ""))
                    if let inner = rule.innerInterface {
                        if let other = rules[n].innerInterface, other != inner {
                            throw fail(blockAt, key, "one interface asks one inner interface (\(other) already, not \(inner))")
                        }
                        rules[n].innerInterface = inner
                    }
                    rules[n].prefixes += rule.prefixes
                    rules[n].autoPrefixes += rule.autoPrefixes
                    rules[n].ifacePrefixes += rule.ifacePrefixes
                } else {
                    blockLines[iface] = t[blockAt].line
                    rules.append(rule)
                }
            default:
                throw fail(i, key, "unknown option (route-ttl, address-ttl, proxy)")
            }
        }
        guard !rules.isEmpty else { throw NDPConfigError(file: path, line: 1, key: "proxy", message: "no proxy section") }
        for rule in rules where rule.prefixes.isEmpty && rule.autoPrefixes.isEmpty && rule.ifacePrefixes.isEmpty {
            warnings.append(NDPConfigWarning(file: path, line: blockLines[rule.interface] ?? 1, key: "proxy",
                                             message: "proxy \(rule.interface) has no rule: it answers nothing until one is added (ndppd runs idle too)"))
        }
        // ndppd answers for its own host's addresses only through the kernel, like ignoreLocal.
        return rules.map { var r = $0; r.routeTTL = routeTTL; return r }
    }
}
