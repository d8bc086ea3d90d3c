// Interface addresses: `ip addr add/del/show` as typed, idempotent calls.
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// An address on an interface (RTM_NEWADDR).
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public var interfaceIndex: Int32
    public var address: IPAddress
    public var prefixLength: UInt8
    /// The other end of a point-to-point link, if set.
    public var peer: IPAddress?
    /// IFA_F_* flags (IFA_F_NODAD = 0x02, IFA_F_PERMANENT = 0x80, ...).
    public var flags: UInt32
    /// RT_SCOPE_* (0 universe, 253 link, 254 host).
    public var scope: UInt8
    /// Deprecated (IPv6, RFC 4862 §5.5.4): preferred lifetime 0, valid until removed. Connections
    /// open on it go on; the kernel picks it as a source for none of the new ones. Read back from
    /// the kernel's IFA_F_DEPRECATED. An address of a renumbered prefix during its valid lifetime.
    public var deprecated: Bool

    public init(interfaceIndex: Int32, address: IPAddress, prefixLength: UInt8, peer: IPAddress? = nil, flags: UInt32 = 0, scope: UInt8 = 0, deprecated: Bool = false) {
        self.interfaceIndex = interfaceIndex
        self.address = address
        self.prefixLength = prefixLength
        self.peer = peer
        self.flags = flags
        self.scope = scope
        self.deprecated = deprecated
    }

    /// The same address on the same interface with the same length (what the kernel keys an
    /// address by), whatever its flags and lifetimes.
    public func isSameAddress(as o: InterfaceAddress) -> Bool {
        interfaceIndex == o.interfaceIndex && address == o.address && prefixLength == o.prefixLength
    }

    /// `2001:db8::3/64`, `2001:db8::3/64 (deprecated)`
    public var description: String { "\(address)/\(prefixLength)" + (deprecated ? " (deprecated)" : "") }

    /// IFA_F_NODAD: skip duplicate address detection (IPv6).
    public static let noDAD: UInt32 = 0x02
    /// IFA_F_DEPRECATED: the preferred lifetime is over.
    public static let deprecatedFlag: UInt32 = 0x20
    /// IFA_F_PERMANENT: no lifetime (set by hand, not learned from router advertisements).
    public static let permanentFlag: UInt32 = 0x80
    /// IFA_F_TENTATIVE: duplicate address detection is not done yet.
    public static let tentativeFlag: UInt32 = 0x40
}

extension RouteSocket {
    /// Addresses in the namespace, optionally of one interface. The corresponding command is `ip -j addr show`.
    public func addresses(interface: String? = nil) throws(RouteKitError) -> [InterfaceAddress] {
        try addressLifetimes(interface: interface).map(\.address)
    }

    /// Addresses with their remaining lifetimes in seconds (`UInt32.max`: forever), optionally of
    /// one interface: what SLAAC configured from router advertisements, and how long it stays.
    /// The corresponding command is `ip -j addr show` (`preferred_life_time`, `valid_life_time`).
    public func addressLifetimes(interface: String? = nil) throws(RouteKitError) -> [(address: InterfaceAddress, preferred: UInt32, valid: UInt32)] {
        let index = try interface.map { (n: String) throws(RouteKitError) -> Int32 in try interfaceIndex(n) }
        var cache: OpaquePointer? = nil
        let rc = rtnl_addr_alloc_cache(sock, &cache)
        if rc < 0 { throw RouteKitError(libnl: rc, operation: "list", object: "addresses in \(namespace)") }
        defer { nl_cache_free(cache) }
        var out: [(address: InterfaceAddress, preferred: UInt32, valid: UInt32)] = []
        var obj = nl_cache_get_first(cache)
        while let a = obj {
            obj = nl_cache_get_next(a)
            let ifindex = rtnl_addr_get_ifindex(a)
            if let index, ifindex != index { continue }
            guard let local = IPAddress(nl: rtnl_addr_get_local(a)) else { continue }
            let flags = rtnl_addr_get_flags(a)
            let address = InterfaceAddress(interfaceIndex: ifindex, address: local, prefixLength: UInt8(clamping: rtnl_addr_get_prefixlen(a)),
                                           peer: IPAddress(nl: rtnl_addr_get_peer(a)).flatMap { $0 == local ? nil : $0 },
                                           flags: flags, scope: UInt8(clamping: rtnl_addr_get_scope(a)), deprecated: flags & InterfaceAddress.deprecatedFlag != 0)
            out.append((address, rtnl_addr_get_preferred_lifetime(a), rtnl_addr_get_valid_lifetime(a)))
        }
        return out
    }

    private func addressObject(_ a: InterfaceAddress, operation: String, lifetimes: Bool = false) throws(RouteKitError) -> OpaquePointer {
        guard a.prefixLength <= a.address.bitWidth else {
            throw RouteKitError(.invalidArgument, operation: operation, object: a.description, detail: "prefix length must be 0-\(a.address.bitWidth)")
        }
        guard let obj = rtnl_addr_alloc(), let local = a.address.nlAddress(prefixLength: a.prefixLength) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: operation, object: a.description, detail: "out of memory")
        }
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(obj, a.interfaceIndex)
        _ = rtnl_addr_set_local(obj, local)
        rtnl_addr_set_prefixlen(obj, Int32(a.prefixLength))
        if let peer = a.peer, let p = peer.nlAddress(prefixLength: a.prefixLength) {
            _ = rtnl_addr_set_peer(obj, p)
            nl_addr_put(p)
        }
        if a.flags != 0 { rtnl_addr_set_flags(obj, a.flags & ~InterfaceAddress.deprecatedFlag) }
        // IFA_CACHEINFO: preferred 0 for a deprecated address; both forever to make one preferred again.
        if a.deprecated || lifetimes {
            rtnl_addr_set_preferred_lifetime(obj, a.deprecated ? 0 : UInt32.max)
            rtnl_addr_set_valid_lifetime(obj, UInt32.max)
        }
        return obj
    }

    /// Adds an address; `.exists` if it is there. The corresponding command is `ip addr add ADDR/LEN dev IF`.
    public func addAddress(_ a: InterfaceAddress) throws(RouteKitError) {
        let obj = try addressObject(a, operation: "add address")
        defer { rtnl_addr_put(obj) }
        try transact({ rtnl_addr_build_add_request(obj, NLM_F_EXCL, $0) }, operation: "add address", object: "\(a) dev #\(a.interfaceIndex)")
    }

    /// Makes sure the address is present with this prefix length: adds it, leaves an equal one,
    /// replaces one with another prefix length, deprecates one (or makes it preferred again) in
    /// place, so connections on it are not cut.
    public func ensureAddress(_ a: InterfaceAddress) throws(RouteKitError) {
        if let existing = try addresses().first(where: { $0.interfaceIndex == a.interfaceIndex && $0.address == a.address }) {
            if existing.prefixLength == a.prefixLength && existing.peer == a.peer {
                if existing.deprecated == a.deprecated { return }
                if case .v4 = a.address { return }
                // NLM_F_REPLACE: the kernel changes the lifetimes of the address it has.
                let obj = try addressObject(a, operation: "change address", lifetimes: true)
                defer { rtnl_addr_put(obj) }
                try transact({ rtnl_addr_build_add_request(obj, NLM_F_REPLACE, $0) }, operation: a.deprecated ? "deprecate address" : "change address",
                             object: "\(a) dev #\(a.interfaceIndex)")
                return
            }
            try removeAddress(existing)
        }
        try addAddress(a)
    }

    /// Removes an address; no error if it is already gone. The corresponding command is `ip addr del ADDR/LEN dev IF`.
    public func removeAddress(_ a: InterfaceAddress) throws(RouteKitError) {
        let obj = try addressObject(a, operation: "remove address")
        defer { rtnl_addr_put(obj) }
        do {
            try transact({ rtnl_addr_build_delete_request(obj, 0, $0) }, operation: "remove address", object: "\(a) dev #\(a.interfaceIndex)")
        } catch where error.code == .notFound || error.code == .other(EADDRNOTAVAIL) {}
    }
}
