// Neighbours and proxy neighbours: `ip -6 neigh add/del/show [proxy]` as typed calls.
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// A neighbour cache entry or a proxy entry (RTM_NEWNEIGH).
public struct Neighbour: Hashable, Sendable, CustomStringConvertible {
    public var interfaceIndex: Int32
    public var address: IPAddress
    public var mac: MACAddress?
    /// NUD_* state (0x80 permanent, 0x02 reachable...).
    public var state: UInt16
    /// A proxy entry: the kernel answers solicitations for `address` on the interface
    /// (with net.ipv6.conf.IF.proxy_ndp = 1).
    public var isProxy: Bool

    public var description: String { "\(isProxy ? "proxy " : "")\(address) dev #\(interfaceIndex)" + (mac.map { " lladdr \($0)" } ?? "") }
}

extension RouteSocket {
    /// Neighbour entries, or proxy entries when `proxy` is true. The corresponding command is
    /// `ip -j -6 neigh show [proxy]`.
    public func neighbours(ipv6: Bool = true, proxy: Bool = false) throws(RouteKitError) -> [Neighbour] {
        guard let msg = nlmsg_alloc_simple(Int32(RTM_GETNEIGH), NLM_F_DUMP) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: "list", object: "neighbours", detail: "out of memory")
        }
        var hdr = ndmsg()
        hdr.ndm_family = UInt8(ipv6 ? AF_INET6 : AF_INET)
        hdr.ndm_flags = proxy ? UInt8(NTF_PROXY) : 0
        _ = nlmsg_append(msg, &hdr, MemoryLayout<ndmsg>.size, sixgate_nlmsg_alignto())
        var out = [Neighbour]()
        try request(msg, operation: "list", object: "\(proxy ? "proxy " : "")neighbours in \(namespace)") { h in
            guard h.pointee.nlmsg_type == UInt16(RTM_NEWNEIGH) else { return }
            var obj: OpaquePointer? = nil
            guard rtnl_neigh_parse(h, &obj) >= 0, let n = obj else { return }
            defer { rtnl_neigh_put(n) }
            guard let dst = IPAddress(nl: rtnl_neigh_get_dst(n)) else { return }
            let isProxy = UInt32(rtnl_neigh_get_flags(n)) & UInt32(NTF_PROXY) != 0
            guard isProxy == proxy else { return }
            var mac: MACAddress? = nil
            if let l = rtnl_neigh_get_lladdr(n), nl_addr_get_len(l) == 6, let p = nl_addr_get_binary_addr(l) {
                mac = MACAddress(bytes: UnsafeRawBufferPointer(start: p, count: 6))
            }
            out.append(Neighbour(interfaceIndex: rtnl_neigh_get_ifindex(n), address: dst, mac: mac,
                                 state: UInt16(truncatingIfNeeded: rtnl_neigh_get_state(n)), isProxy: isProxy))
        }
        return out
    }

    func proxyObject(_ address: IPv6Address, interfaceIndex: Int32, operation: String) throws(RouteKitError) -> OpaquePointer {
        guard let n = rtnl_neigh_alloc(), let dst = IPAddress.v6(address).nlAddress() else {
            throw RouteKitError(.other(NLE_NOMEM), operation: operation, object: "proxy \(address)", detail: "out of memory")
        }
        defer { nl_addr_put(dst) }
        rtnl_neigh_set_ifindex(n, interfaceIndex)
        rtnl_neigh_set_family(n, AF_INET6)
        _ = rtnl_neigh_set_dst(n, dst)
        rtnl_neigh_set_flags(n, UInt32(NTF_PROXY))
        rtnl_neigh_set_state(n, Int32(NUD_PERMANENT))
        return n
    }

    /// Adds a proxy entry; `.exists` if present (the kernel itself accepts duplicates silently, so
    /// this looks first). The corresponding command is `ip -6 neigh add proxy ADDR dev IF`.
    public func addProxyNeighbour(_ address: IPv6Address, interfaceIndex: Int32) throws(RouteKitError) {
        if try neighbours(proxy: true).contains(where: { $0.address == .v6(address) && $0.interfaceIndex == interfaceIndex }) {
            throw RouteKitError(.exists, operation: "add", object: "proxy \(address) dev #\(interfaceIndex)", detail: "proxy entry exists")
        }
        try insertProxyNeighbour(address, interfaceIndex: interfaceIndex)
    }

    func insertProxyNeighbour(_ address: IPv6Address, interfaceIndex: Int32) throws(RouteKitError) {
        let n = try proxyObject(address, interfaceIndex: interfaceIndex, operation: "add")
        defer { rtnl_neigh_put(n) }
        try transact({ rtnl_neigh_build_add_request(n, NLM_F_EXCL, $0) }, operation: "add", object: "proxy \(address) dev #\(interfaceIndex)")
    }

    /// Adds a proxy entry unless it is there already.
    public func ensureProxyNeighbour(_ address: IPv6Address, interfaceIndex: Int32) throws(RouteKitError) {
        try insertProxyNeighbour(address, interfaceIndex: interfaceIndex)  // the kernel treats an existing entry as success
    }

    /// Removes a proxy entry; no error if it is already gone. The corresponding command is
    /// `ip -6 neigh del proxy ADDR dev IF`.
    public func removeProxyNeighbour(_ address: IPv6Address, interfaceIndex: Int32) throws(RouteKitError) {
        let n = try proxyObject(address, interfaceIndex: interfaceIndex, operation: "remove")
        defer { rtnl_neigh_put(n) }
        do {
            try transact({ rtnl_neigh_build_delete_request(n, 0, $0) }, operation: "remove", object: "proxy \(address) dev #\(interfaceIndex)")
        } catch where error.code == .notFound {}
    }
}
