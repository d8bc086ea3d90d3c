// Routes: `ip route add/replace/del/show/get` as typed, idempotent calls. Reads parse every
// RTM_NEWROUTE message of a dump (libnl's route cache merges routes that differ only by
// interface: libnl issue 224); writes use libnl's builders.
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// One next hop of a route.
public struct NextHop: Hashable, Sendable {
    public var interfaceIndex: Int32?
    public var gateway: IPAddress?
    public var weight: UInt8
    public init(interfaceIndex: Int32? = nil, gateway: IPAddress? = nil, weight: UInt8 = 1) {
        self.interfaceIndex = interfaceIndex
        self.gateway = gateway
        self.weight = weight
    }
}

/// A route (RTM_NEWROUTE).
public struct Route: Hashable, Sendable, CustomStringConvertible {
    public var destination: IPPrefix
    /// Routing table (254 main, 255 local).
    public var table: UInt32
    /// Who installed it: 2 kernel, 3 boot, 4 static, ``RouteSocket/sixgateProtocol`` for Sixgate.
    public var protocolNumber: UInt8
    /// RT_SCOPE_*: 0 universe, 253 link, 254 host.
    public var scope: UInt8
    /// RTN_*: 1 unicast, 2 local, 6 blackhole, 7 unreachable...
    public var type: UInt8
    /// The metric ("priority").
    public var metric: UInt32
    /// The source prefix of a source-specific route (`ip -6 route add ... from PREFIX`).
    public var sourcePrefix: IPPrefix?
    /// The preferred source address (`src ADDR`).
    public var preferredSource: IPAddress?
    public var nextHops: [NextHop]
    /// The route's MTU metric (`mtu N`): set by hand, or, on a lookup, the path MTU the kernel
    /// learned from an ICMP "packet too big" / "fragmentation needed" (a PMTU exception). nil: none.
    /// Read only: not compared by ``satisfies(_:)`` and not written by add/replace.
    public var mtu: UInt32? = nil

    public init(destination: IPPrefix, interfaceIndex: Int32? = nil, gateway: IPAddress? = nil, table: UInt32 = 254,
                protocolNumber: UInt8 = RouteSocket.sixgateProtocol, scope: UInt8? = nil, type: UInt8 = 1, metric: UInt32 = 0,
                sourcePrefix: IPPrefix? = nil, preferredSource: IPAddress? = nil) {
        self.destination = destination
        self.table = table
        self.protocolNumber = protocolNumber
        // Like `ip route`: a route through a gateway has universe scope; a direct IPv4 route link scope.
        if let scope { self.scope = scope } else if gateway == nil, case .v4 = destination, type == 1 { self.scope = 253 } else { self.scope = 0 }
        self.type = type
        self.metric = metric
        self.sourcePrefix = sourcePrefix
        self.preferredSource = preferredSource
        nextHops = (interfaceIndex != nil || gateway != nil) ? [NextHop(interfaceIndex: interfaceIndex, gateway: gateway)] : []
    }

    /// The single next hop's interface (nil for multipath or none).
    public var interfaceIndex: Int32? { nextHops.count == 1 ? nextHops[0].interfaceIndex : nil }
    /// The single next hop's gateway.
    public var gateway: IPAddress? { nextHops.count == 1 ? nextHops[0].gateway : nil }

    public var description: String {
        var s = destination.length == 0 ? "default" : destination.description
        if let g = gateway { s += " via \(g)" }
        if let i = interfaceIndex { s += " dev #\(i)" }
        if table != 254 { s += " table \(table)" }
        if metric != 0 { s += " metric \(metric)" }
        if let f = sourcePrefix { s += " from \(f)" }
        if let m = mtu { s += " mtu \(m)" }
        return s
    }

    /// The identity the kernel keys a route on (what replace/delete match).
    /// Whether this route (as read from the kernel) already is `desired`: same key, protocol and
    /// preferred source, and the same next hops, where an interface the caller left out (the kernel
    /// resolves it for a gateway) and the weight of a single path are not compared.
    public func satisfies(_ desired: Route) -> Bool {
        guard key == desired.key, protocolNumber == desired.protocolNumber, preferredSource == desired.preferredSource,
              nextHops.count == desired.nextHops.count else { return false }
        for (have, want) in zip(nextHops, desired.nextHops) {
            if have.gateway != want.gateway { return false }
            if let i = want.interfaceIndex, have.interfaceIndex != i { return false }
            if desired.nextHops.count > 1 && have.weight != want.weight { return false }
        }
        return true
    }

    /// The kernel stores metric 0 of an IPv6 route as 1024 (IP6_RT_PRIO_USER), so both name the same route.
    var key: String {
        var m = metric
        if m == 0, case .v6 = destination { m = 1024 }
        return "\(destination)|\(table)|\(m)|\(sourcePrefix?.description ?? "")|\(type)"
    }
}

extension RouteSocket {
    /// The route protocol number Sixgate marks its routes with (`ip route show proto 74`), so that
    /// reconciliation touches only what Sixgate installed.
    public static let sixgateProtocol: UInt8 = 74

    static func family(_ p: IPPrefix) -> Int32 { if case .v4 = p { return AF_INET }; return AF_INET6 }

    /// Routes of one family, optionally of one table. The corresponding command is
    /// `ip -j -4|-6 route show table all`.
    public func routes(ipv6: Bool, table: UInt32? = nil) throws(RouteKitError) -> [Route] {
        guard let msg = nlmsg_alloc_simple(Int32(RTM_GETROUTE), NLM_F_DUMP) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: "list", object: "routes", detail: "out of memory")
        }
        var hdr = rtmsg()
        hdr.rtm_family = UInt8(ipv6 ? AF_INET6 : AF_INET)
        _ = nlmsg_append(msg, &hdr, MemoryLayout<rtmsg>.size, sixgate_nlmsg_alignto())
        var out = [Route]()
        try request(msg, operation: "list", object: "\(ipv6 ? "IPv6" : "IPv4") routes in \(namespace)") { h in
            if let r = Self.route(from: h), table == nil || r.table == table { out.append(r) }
        }
        return out
    }

    static func route(from h: UnsafeMutablePointer<nlmsghdr>) -> Route? {
        guard h.pointee.nlmsg_type == UInt16(RTM_NEWROUTE) else { return nil }
        var obj: OpaquePointer? = nil
        guard rtnl_route_parse(h, &obj) >= 0, let r = obj else { return nil }
        defer { rtnl_route_put(r) }
        guard let dst = IPPrefix(nl: rtnl_route_get_dst(r)) else { return nil }
        var route = Route(destination: dst, table: rtnl_route_get_table(r), protocolNumber: rtnl_route_get_protocol(r),
                          scope: rtnl_route_get_scope(r), type: rtnl_route_get_type(r), metric: rtnl_route_get_priority(r),
                          sourcePrefix: IPPrefix(nl: rtnl_route_get_src(r)).flatMap { $0.length == 0 ? nil : $0 },
                          preferredSource: IPAddress(nl: rtnl_route_get_pref_src(r)))
        var hops = [NextHop]()
        for i in 0..<rtnl_route_get_nnexthops(r) {
            guard let nh = rtnl_route_nexthop_n(r, i) else { continue }
            let idx = rtnl_route_nh_get_ifindex(nh)
            hops.append(NextHop(interfaceIndex: idx > 0 ? idx : nil, gateway: IPAddress(nl: rtnl_route_nh_get_gateway(nh)),
                                weight: rtnl_route_nh_get_weight(nh)))
        }
        route.nextHops = hops
        var mtu: UInt32 = 0
        if rtnl_route_get_metric(r, Int32(RTAX_MTU), &mtu) == 0, mtu > 0 { route.mtu = mtu }
        return route
    }

    func routeObject(_ route: Route, operation: String) throws(RouteKitError) -> OpaquePointer {
        guard let r = rtnl_route_alloc(), let dst = route.destination.network.nlAddress(prefixLength: route.destination.length) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: operation, object: route.description, detail: "out of memory")
        }
        defer { nl_addr_put(dst) }
        rtnl_route_set_family(r, UInt8(Self.family(route.destination)))
        rtnl_route_set_table(r, route.table)
        _ = rtnl_route_set_dst(r, dst)
        rtnl_route_set_protocol(r, route.protocolNumber)
        rtnl_route_set_scope(r, route.scope)
        _ = rtnl_route_set_type(r, route.type)
        rtnl_route_set_priority(r, route.metric)
        if let s = route.sourcePrefix, let a = s.network.nlAddress(prefixLength: s.length) {
            _ = rtnl_route_set_src(r, a)
            nl_addr_put(a)
        }
        if let p = route.preferredSource, let a = p.nlAddress() {
            _ = rtnl_route_set_pref_src(r, a)
            nl_addr_put(a)
        }
        for hop in route.nextHops {
            guard let nh = rtnl_route_nh_alloc() else { continue }
            if let i = hop.interfaceIndex { rtnl_route_nh_set_ifindex(nh, i) }
            if let g = hop.gateway, let a = g.nlAddress() {
                rtnl_route_nh_set_gateway(nh, a)
                nl_addr_put(a)
            }
            if route.nextHops.count > 1 { rtnl_route_nh_set_weight(nh, hop.weight) }
            rtnl_route_add_nexthop(r, nh)
        }
        return r
    }

    /// Adds a route; `.exists` if an equal key is there. The corresponding command is `ip route add ...`.
    public func addRoute(_ route: Route) throws(RouteKitError) {
        let r = try routeObject(route, operation: "add route")
        defer { rtnl_route_put(r) }
        try transact({ rtnl_route_build_add_request(r, NLM_F_EXCL, $0) }, operation: "add route", object: route.description)
    }

    /// Adds or replaces the route with the same key. The corresponding command is `ip route replace ...`.
    public func replaceRoute(_ route: Route) throws(RouteKitError) {
        let r = try routeObject(route, operation: "replace route")
        defer { rtnl_route_put(r) }
        try transact({ rtnl_route_build_add_request(r, NLM_F_REPLACE, $0) }, operation: "replace route", object: route.description)
    }

    /// Adds the route if missing, leaves it if equal, replaces it if different.
    public func ensureRoute(_ route: Route) throws(RouteKitError) {
        // One request for a new route (the common case: a client enrolled); only a route that
        // exists already is read back and compared (reading the table each time made enrolment
        // cost grow with the number of clients).
        do { try addRoute(route); return } catch where error.code == .exists {}
        let existing = try routes(ipv6: Self.family(route.destination) == AF_INET6, table: route.table).filter { $0.key == route.key }
        if existing.contains(where: { $0.satisfies(route) }) { return }
        try replaceRoute(route)
    }

    /// Removes a route; no error if it is already gone. The corresponding command is `ip route del ...`.
    public func removeRoute(_ route: Route) throws(RouteKitError) {
        let r = try routeObject(route, operation: "remove route")
        defer { rtnl_route_put(r) }
        do {
            try transact({ rtnl_route_build_del_request(r, 0, $0) }, operation: "remove route", object: route.description)
        } catch where error.code == .notFound {}
    }

    /// The route the kernel would use for `destination` (RTM_GETROUTE). The corresponding command
    /// is `ip -j route get ADDR`.
    public func lookupRoute(to destination: IPAddress) throws(RouteKitError) -> Route {
        guard let msg = nlmsg_alloc_simple(Int32(RTM_GETROUTE), 0) else {
            throw RouteKitError(.other(NLE_NOMEM), operation: "look up", object: "route to \(destination)", detail: "out of memory")
        }
        var hdr = rtmsg()
        let bytes = destination.bytes
        hdr.rtm_family = UInt8(bytes.count == 4 ? AF_INET : AF_INET6)
        hdr.rtm_dst_len = destination.bitWidth
        _ = nlmsg_append(msg, &hdr, MemoryLayout<rtmsg>.size, sixgate_nlmsg_alignto())
        _ = bytes.withUnsafeBytes { nla_put(msg, Int32(RTA_DST.rawValue), Int32($0.count), $0.baseAddress) }
        var found: Route? = nil
        try request(msg, operation: "look up", object: "route to \(destination)") { h in
            if found == nil { found = Self.route(from: h) }
        }
        guard let found else { throw RouteKitError(.unreachable, operation: "look up", object: "route to \(destination)", detail: "no route") }
        return found
    }
}
