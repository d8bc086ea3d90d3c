// The client prefix's life with `prefix_source = "external"` (issue 24): the lifetimes its source
// gave it (a DHCPv6-PD lease's preferred and valid lifetimes, RFC 8415 §21.22), and the earlier
// prefixes still valid after a renumbering, which gatewayd keeps routing, deprecated, until their
// valid lifetime ends. Kept in the state directory (STATE/prefix) so a restart keeps them.
import PacketKit

/// An earlier client prefix during the rest of its valid lifetime.
public struct RetiringPrefix: Sendable, Equatable, Codable {
    public var prefix: String
    /// Seconds since 1970 when it goes.
    public var validUntil: Int64
    public init(prefix: IPv6Prefix, validUntil: Int64) {
        self.prefix = prefix.description
        self.validUntil = validUntil
    }
    public var ipv6Prefix: IPv6Prefix? { IPv6Prefix(prefix) }
}

/// The current prefix, its lifetimes and the retiring prefixes.
public struct PrefixState: Sendable, Equatable {
    public var prefix: IPv6Prefix
    /// Seconds since 1970; nil: no lifetime (a static prefix, or one set by hand without one).
    public var preferredUntil: Int64?
    public var validUntil: Int64?
    public var retiring: [RetiringPrefix] = []
    /// The prefix came from its source (a `prefix set`), not from the config file, whose prefix
    /// with `prefix_source = "external"` only stands in until the first one arrives: that one
    /// was never routed to this gateway and is not kept.
    public var fromSource: Bool

    public init(prefix: IPv6Prefix, preferredUntil: Int64? = nil, validUntil: Int64? = nil, retiring: [RetiringPrefix] = [], fromSource: Bool = true) {
        self.prefix = prefix
        self.preferredUntil = preferredUntil
        self.validUntil = validUntil
        self.retiring = retiring
        self.fromSource = fromSource
    }

    /// How long an earlier prefix is kept when its valid lifetime is not known (set by hand): two
    /// hours, the least a SLAAC host keeps an address it was told to drop (RFC 4862 §5.5.3 e).
    public static let defaultHold: Int64 = 7200

    /// The file's text: the prefix on the first line (all an earlier version wrote), then
    /// `preferred-until`, `valid-until` and `retiring PREFIX UNTIL` lines, times in seconds since 1970.
    public func render() -> String {
        var lines = [prefix.description]
        if let p = preferredUntil { lines.append("preferred-until \(p)") }
        if let v = validUntil { lines.append("valid-until \(v)") }
        for r in retiring { lines.append("retiring \(r.prefix) \(r.validUntil)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads `render()`'s text; nil when the first line is not a prefix. Lines it does not know are skipped.
    public init?(parsing text: String) {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: " ").map(String.init) }.filter { !$0.isEmpty }
        guard let first = lines.first, first.count == 1, let p = IPv6Prefix(first[0]) else { return nil }
        self.init(prefix: p)
        for words in lines.dropFirst() {
            switch (words.first, words.count) {
            case ("preferred-until", 2): preferredUntil = Int64(words[1])
            case ("valid-until", 2): validUntil = Int64(words[1])
            case ("retiring", 3):
                if let r = IPv6Prefix(words[1]), let t = Int64(words[2]) { retiring.append(RetiringPrefix(prefix: r, validUntil: t)) }
            default: continue
            }
        }
    }

    /// The prefixes still valid at `now` (seconds since 1970) beside the current one.
    public func retiringPrefixes(at now: Int64) -> [IPv6Prefix] {
        retiring.filter { $0.validUntil > now }.compactMap(\.ipv6Prefix)
    }

    /// The state after a move to `new` at `now`: the current prefix joins the retiring ones until
    /// `oldValid` seconds from now when given (0: at once), else until its own valid lifetime ends,
    /// else for `defaultHold` (a stand-in from the config file: not at all, unless `oldValid`);
    /// a retiring prefix that comes back is current again.
    public func moved(to new: IPv6Prefix, preferred: UInt32?, valid: UInt32?, oldValid: UInt32?, now: Int64) -> PrefixState {
        var next = PrefixState(prefix: new, preferredUntil: preferred.map { now + Int64($0) }, validUntil: valid.map { now + Int64($0) })
        let until = oldValid.map { now + Int64($0) } ?? (fromSource ? validUntil ?? (now + Self.defaultHold) : now)
        next.retiring = retiring.filter { $0.validUntil > now && $0.prefix != new.description }
        if until > now, new != prefix { next.retiring.append(RetiringPrefix(prefix: prefix, validUntil: until)) }
        return next
    }

    /// An address or delegated prefix of the current prefix at the same position in `earlier`
    /// (nil when its position does not fit there).
    public static func position(_ p: IPv6Prefix, of current: IPv6Prefix, in earlier: IPv6Prefix) -> IPv6Prefix? {
        let host = p.network.rawValue & ~IPv6Prefix.mask(current.length)
        guard host & IPv6Prefix.mask(earlier.length) == 0, p.length >= earlier.length else { return nil }
        return IPv6Prefix(containing: IPv6Address(rawValue: earlier.network.rawValue | host), length: p.length)
    }
}
