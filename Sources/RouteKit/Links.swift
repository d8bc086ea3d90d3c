// Links: list, look up, up/down, MTU, create/delete veth pairs. `ip link` as typed calls.
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// A network interface as the kernel reports it (RTM_NEWLINK).
public struct Link: Hashable, Sendable {
    public var index: Int32
    public var name: String
    public var mtu: UInt32
    /// IFF_* flags (IFF_UP = 0x1, IFF_LOWER_UP = 0x10000, ...).
    public var flags: UInt32
    /// The hardware address, when it is a 6-byte MAC.
    public var mac: MACAddress?
    /// The link kind ("veth", "tun", ...), nil for plain devices.
    public var kind: String?

    /// IFF_UP: administratively up.
    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
}

extension RouteSocket {
    /// Every link in the namespace. The corresponding command is `ip -j link show`.
    public func links() throws(RouteKitError) -> [Link] {
        var cache: OpaquePointer? = nil
        let rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache)
        if rc < 0 { throw RouteKitError(libnl: rc, operation: "list", object: "links in \(namespace)") }
        defer { nl_cache_free(cache) }
        var out = [Link]()
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            out.append(Self.link(from: o))
            obj = nl_cache_get_next(o)
        }
        return out.sorted { $0.index < $1.index }
    }

    static func link(from l: OpaquePointer) -> Link {
        var mac: MACAddress? = nil
        if let a = rtnl_link_get_addr(l), nl_addr_get_len(a) == 6, let p = nl_addr_get_binary_addr(a) {
            mac = MACAddress(bytes: UnsafeRawBufferPointer(start: p, count: 6))
        }
        return Link(index: rtnl_link_get_ifindex(l), name: rtnl_link_get_name(l).map { String(cString: $0) } ?? "",
                    mtu: rtnl_link_get_mtu(l), flags: rtnl_link_get_flags(l), mac: mac,
                    kind: rtnl_link_get_type(l).map { String(cString: $0) })
    }

    /// The link named `name`. The corresponding command is `ip -j link show dev NAME`.
    public func link(named name: String) throws(RouteKitError) -> Link {
        guard let l = try links().first(where: { $0.name == name }) else {
            throw RouteKitError(.noSuchInterface, operation: "find", object: "interface \(name)", detail: "no such interface in \(namespace)")
        }
        return l
    }

    private func changeLink(_ name: String, operation: String, _ edit: (OpaquePointer) -> Void) throws(RouteKitError) {
        var original: OpaquePointer? = nil
        let rc = rtnl_link_get_kernel(sock, 0, name, &original)
        if rc < 0 {
            let e = RouteKitError(libnl: rc, operation: operation, object: "interface \(name)")
            throw e.code == .notFound || e.code == .noSuchInterface
                ? RouteKitError(.noSuchInterface, operation: operation, object: "interface \(name)", detail: "no such interface in \(namespace)") : e
        }
        defer { rtnl_link_put(original) }
        guard let change = rtnl_link_alloc() else { throw RouteKitError(.other(NLE_NOMEM), operation: operation, object: name, detail: "out of memory") }
        defer { rtnl_link_put(change) }
        edit(change)
        let rc2 = rtnl_link_change(sock, original, change, 0)
        if rc2 < 0 { throw RouteKitError(libnl: rc2, operation: operation, object: "interface \(name)") }
    }

    /// Brings a link up or down. The corresponding command is `ip link set dev NAME up|down`.
    public func setLink(_ name: String, up: Bool) throws(RouteKitError) {
        try changeLink(name, operation: up ? "set up" : "set down") { c in
            if up { rtnl_link_set_flags(c, UInt32(IFF_UP)) } else { rtnl_link_unset_flags(c, UInt32(IFF_UP)) }
        }
    }

    /// Sets the MTU. The corresponding command is `ip link set dev NAME mtu MTU`.
    public func setMTU(_ name: String, _ mtu: UInt32) throws(RouteKitError) {
        try changeLink(name, operation: "set mtu \(mtu) on") { c in rtnl_link_set_mtu(c, mtu) }
    }

    /// Creates a veth pair in this namespace. The corresponding command is
    /// `ip link add NAME type veth peer name PEER`.
    public func addVethPair(_ name: String, peer: String) throws(RouteKitError) {
        for n in [name, peer] where !SysctlKey.isValidInterfaceName(n) {
            throw RouteKitError(.invalidArgument, operation: "add veth", object: n, detail: "invalid interface name (1-15 bytes, no '/', ':' or spaces)")
        }
        // Not rtnl_link_veth_add: it moves the peer to the namespace of a process, which is not
        // this socket's namespace when RouteSocket was opened in a named one.
        guard let link = rtnl_link_veth_alloc(), let peerLink = rtnl_link_veth_get_peer(link) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: "add veth pair", object: "\(name)/\(peer)", detail: "out of memory")
        }
        defer { rtnl_link_put(peerLink); rtnl_link_veth_release(link) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_name(peerLink, peer)
        let rc = rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL)
        if rc < 0 { throw RouteKitError(libnl: rc, operation: "add veth pair", object: "\(name)/\(peer)") }
    }

    /// Deletes a link. The corresponding command is `ip link del NAME`.
    public func deleteLink(_ name: String) throws(RouteKitError) {
        guard let l = rtnl_link_alloc() else { throw RouteKitError(.other(NLE_NOMEM), operation: "delete", object: name, detail: "out of memory") }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        let rc = rtnl_link_delete(sock, l)
        if rc < 0 {
            let e = RouteKitError(libnl: rc, operation: "delete", object: "interface \(name)")
            throw e.code == .notFound ? RouteKitError(.noSuchInterface, operation: "delete", object: "interface \(name)", detail: e.detail) : e
        }
    }
}
