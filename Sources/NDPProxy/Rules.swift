// Which targets a proxy answers for, per interface: npd6's model (a prefix, an allow or deny
// list, ignore-local) with its flags (router, link-layer option on unicast, hop limit).

/// npd6's `listtype`.
public enum ListType: String, Sendable, Equatable {
    /// Every target in the prefix.
    case none
    /// Every target in the prefix except those listed.
    case black
    /// Only the listed targets (inside the prefix).
    case white
}

/// Who answers: this process (a packet socket) or the kernel (proxy neighbour entries).
public enum ProxyMode: String, Sendable, Equatable { case answer, kernel }

/// What one interface answers for, and how.
public struct ProxyRule: Sendable, Equatable {
    /// The interface whose solicitations are answered.
    public var interface: String
    /// Targets inside one of these are answered (npd6's prefix, ndppd's `static`).
    public var prefixes: [IPv6Prefix]
    /// Targets inside one of these are answered only if the kernel routes them through another
    /// interface (ndppd's `auto`): the proxy stands in for what it can forward, nothing else.
    public var autoPrefixes: [IPv6Prefix] = []
    /// Seconds a route lookup for `autoPrefixes` is remembered (ndppd route-ttl, default 30 s).
    public var routeTTL: Double = 30
    /// Targets inside one of these are answered only if a host on `innerInterface` answers our own
    /// solicitation for them (ndppd's `iface`).
    public var ifacePrefixes: [IPv6Prefix] = []
    /// The interface asked for `ifacePrefixes`.
    public var innerInterface: String?
    /// Seconds an inner answer (or its absence) is remembered (ndppd ttl, default 30 s).
    public var cacheTTL: Double = 30
    /// Seconds to wait for the inner answer before the target counts as absent (ndppd timeout, 0.5 s).
    public var solicitTimeout: Double = 0.5
    public var listType: ListType = .none
    public var addresses: Set<IPv6Address> = []
    /// Do not answer for addresses the host holds on this interface (the kernel answers those).
    public var ignoreLocal = true
    /// Set the Router flag in advertisements (npd6 routerNA, default on: the proxy is a router).
    public var routerFlag = true
    /// Include the target link-layer address option in answers to unicast solicitations too
    /// (it is always included for multicast ones, RFC 4861 §7.2.4).
    public var linkOption = false
    /// Hop limit of the advertisements; RFC 4861 receivers drop anything but 255.
    public var hopLimit: UInt8 = 255
    /// `.kernel`: no answering here; `ip -6 neigh add proxy` entries for the listed addresses (or the
    /// lease store's) are kept in sync instead and the kernel answers (see `KernelProxy`).
    public var mode: ProxyMode = .answer
    /// Kernel mode: an AddressPool lease store (SQLite, read-only) whose active /128 leases inside
    /// `prefixes` get proxy entries, next to `addresses`.
    public var leaseStore: String?

    public init(interface: String, prefixes: [IPv6Prefix]) {
        self.interface = interface; self.prefixes = prefixes
    }

    /// Why a target is or is not answered (the counters use these).
    public enum Verdict: Sendable, Equatable { case answer, answerIfRouted, answerIfInnerAnswers, outsidePrefix, listed, notListed, local }

    public func verdict(for target: IPv6Address, localAddresses: Set<IPv6Address>) -> Verdict {
        let isStatic = prefixes.contains(where: { $0.contains(target) })
        let isAuto = !isStatic && autoPrefixes.contains(where: { $0.contains(target) })
        guard isStatic || isAuto || ifacePrefixes.contains(where: { $0.contains(target) }) else { return .outsidePrefix }
        switch listType {
        case .none: break
        case .black: if addresses.contains(target) { return .listed }
        case .white: if !addresses.contains(target) { return .notListed }
        }
        if ignoreLocal, localAddresses.contains(target) { return .local }
        return isStatic ? .answer : isAuto ? .answerIfRouted : .answerIfInnerAnswers
    }
}

import PacketKit
