// ndppd.conf, as ndppd 0.2.5 documents it (ndppd.conf(5)): `proxy IFACE { ... rule PREFIX { ... } }`
// blocks with `router`, `timeout`, `ttl` and the rule methods `static`, `auto` and `iface`, plus the
// global `route-ttl`. `#` starts a comment.
import Foundation
import PacketKit

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
        let t = tokens(text)
        var i = 0
        var routeTTL = 30.0
        var rules: [ProxyRule] = []
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
            guard let n = Int(v), n >= 0 else { throw fail(i - 1, key, "\(v.debugDescription) is not a number of milliseconds") }
            return Double(n) / 1000
        }
        func yesNo(_ key: String) throws(NDPConfigError) -> Bool {
            let v = try value(key)
            switch v { case "yes", "true", "on": return true; case "no", "false", "off": return false
            default: throw fail(i - 1, key, "\(v.debugDescription) is not yes or no") }
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
                var rule = ProxyRule(interface: iface, prefixes: [])
                try open(key)
                while i < t.count, t[i].text != "}" {
                    let k = t[i].text
                    switch k {
                    case "router": rule.routerFlag = try yesNo(k)
                    case "timeout": rule.solicitTimeout = try number(k)   // given in milliseconds, as ndppd
                    case "ttl": rule.cacheTTL = try number(k)
                    case "autowire", "promiscuous", "keepalive": _ = try yesNo(k)
                    case "retries": _ = try number(k)
                    case "rule":
                        let text = try value(k)
                        guard let prefix = IPv6Prefix(text) ?? IPv6Address(text).flatMap({ try? IPv6Prefix($0, length: 128) }) else {
                            throw fail(i - 1, k, "\(text.debugDescription) is not an IPv6 address or prefix (host bits must be zero)")
                        }
                        var method = "static"
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
                                default: throw fail(i, m, "unknown rule option (static, auto or iface)")
                                }
                            }
                            guard i < t.count else { throw fail(i, k, "missing }") }
                            i += 1
                            guard methods.count <= 1 else { throw fail(i - 1, k, "static, auto and iface are mutually exclusive") }
                            method = methods.first ?? "static"
                        }
                        switch method {
                        case "auto": rule.autoPrefixes.append(prefix)
                        case "iface":
                            if let other = rule.innerInterface, other != inner {
                                throw fail(i - 1, k, "one proxy block asks one inner interface (\(other) already, not \(inner ?? ""))")
                            }
                            rule.innerInterface = inner
                            rule.ifacePrefixes.append(prefix)
                        default: rule.prefixes.append(prefix)
                        }
                    default: throw fail(i, k, "unknown proxy option (router, timeout, ttl, rule, ...)")
                    }
                }
                guard i < t.count else { throw fail(i, key, "missing } for proxy \(iface)") }
                i += 1
                guard !rule.prefixes.isEmpty || !rule.autoPrefixes.isEmpty || !rule.ifacePrefixes.isEmpty else { throw fail(i - 1, key, "proxy \(iface) has no rule") }
                rules.append(rule)
            default:
                throw fail(i, key, "unknown option (route-ttl, proxy)")
            }
        }
        guard !rules.isEmpty else { throw NDPConfigError(file: path, line: 1, key: "proxy", message: "no proxy section") }
        // ndppd answers for its own host's addresses only through the kernel, like ignoreLocal.
        return rules.map { var r = $0; r.routeTTL = routeTTL; return r }
    }
}

/// Reads a config in either format: ndppd's when it has a `proxy` block, npd6's otherwise.
public enum NDPProxyConfig {
    /// Tells the three formats apart: a `[table]` line means ndp-proxy's TOML, a `proxy` block
    /// ndppd.conf, anything else npd6.conf.
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

    /// Reads and parses the file at `path`, refusing one larger than `maximumFileSize`.
    public static func load(_ path: String) throws(NDPConfigError) -> [ProxyRule] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw NDPConfigError(file: path, line: 0, key: nil, message: errno == ENOENT ? "no such file" : "cannot read: \(String(cString: strerror(errno)))")
        }
        guard Int(st.st_size) <= maximumFileSize else {
            throw NDPConfigError(file: path, line: 0, key: nil, message: "\(st.st_size) bytes: larger than \(maximumFileSize) (a config this big is not one)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw NDPConfigError(file: path, line: 0, key: nil, message: "unreadable") }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(NDPConfigError) -> [ProxyRule] {
        let text = normalized(text)
        // Nothing but comments and blank lines: say that, not what one format would miss.
        let meaningful = text.split(separator: "\n").contains { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            return !t.isEmpty && !t.hasPrefix("#") && !t.hasPrefix("//") && !t.hasPrefix(";")
        }
        guard meaningful else { throw NDPConfigError(file: path, line: 0, key: nil, message: "no proxy rules configured (the file is empty or only comments)") }
        if path.hasSuffix(".toml") || text.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[") }) {
            return try NDPProxyTOML.parse(text, path: path)
        }
        let looksLikeNDPPD = NDPPDConfig.tokens(text).contains { $0.text == "proxy" }
        return looksLikeNDPPD ? try NDPPDConfig.parse(text, path: path) : try NPD6Config.parse(text, path: path)
    }

    /// Whether `text` (at `path`) is read as npd6.conf: npd6's init script reloads it with SIGUSR1.
    public static func isNPD6(_ text: String, path: String) -> Bool {
        let text = normalized(text)
        return !(path.hasSuffix(".toml") || text.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[") }))
            && !NDPPDConfig.tokens(text).contains { $0.text == "proxy" }
    }
}
