// The change monitor: link, address, route and neighbour events as an AsyncSequence, like
// `ip monitor`. A socket subscribed to the rtnetlink multicast groups is read on a thread of its
// own (poll with a timeout, so `stop()` takes effect within a quarter second).
import SixgateSystem
import CNetlink
import Foundation
import PacketKit

/// One change the kernel announced.
public enum RouteEvent: Sendable, Equatable {
    case linkAdded(Link), linkRemoved(Link)
    case addressAdded(InterfaceAddress), addressRemoved(InterfaceAddress)
    case routeAdded(Route), routeRemoved(Route)
    case neighbourAdded(Neighbour), neighbourRemoved(Neighbour)
}

/// Streams routing-state changes of one namespace until stopped.
public final class RouteMonitor: @unchecked Sendable {
    private let socket: RouteSocket
    private let lock = SystemLock()
    private var running = true
        /// The events, in the order the kernel sent them. Ends after `stop()`.
    public let events: AsyncStream<RouteEvent>
    private let continuation: AsyncStream<RouteEvent>.Continuation
    /// Messages the kernel dropped because the reader fell behind (ENOBUFS): resynchronise with a dump.
    public private(set) var overruns = 0

    /// Subscribes in `namespace`. The corresponding command is `ip monitor link address route neigh`.
    public init(namespace: NetworkNamespace = .current) throws(RouteKitError) {
        socket = try RouteSocket(namespace: namespace)
        nl_socket_disable_seq_check(socket.sock)
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEIGH] {
            let rc = nl_socket_add_membership(socket.sock, Int32(group.rawValue))
            if rc < 0 { throw RouteKitError(libnl: rc, operation: "subscribe to", object: "rtnetlink group \(group.rawValue)") }
        }
        (events, continuation) = AsyncStream.makeStream(of: RouteEvent.self, bufferingPolicy: .bufferingNewest(65_536))
        SystemThread.start(name: "sg-rt-monitor") { [self] in self.readLoop() }
    }

    /// Stops reading and finishes the stream.
    public func stop() {
        lock.lock()
        running = false
        lock.unlock()
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func readLoop() {
        let fd = nl_socket_get_fd(socket.sock)
        while isRunning {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 250)
            if ready <= 0 { continue }
            var from = sockaddr_nl()
            var raw: UnsafeMutablePointer<UInt8>? = nil
            let n = nl_recv(socket.sock, &from, &raw, nil)
            if n == -NLE_NOMEM || n == -NLE_BUSY { overruns += 1; continue }
            if n <= 0 { continue }
            var rem = n
            var h = UnsafeMutableRawPointer(raw!).assumingMemoryBound(to: nlmsghdr.self)
            while nlmsg_ok(h, rem) != 0 {
                if let e = Self.event(h) { continuation.yield(e) }
                h = nlmsg_next(h, &rem)
            }
            free(raw)
        }
        continuation.finish()
    }

    static func event(_ h: UnsafeMutablePointer<nlmsghdr>) -> RouteEvent? {
        let type = Int32(h.pointee.nlmsg_type)
        switch type {
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE):
            h.pointee.nlmsg_type = UInt16(RTM_NEWROUTE)  // route(from:) parses NEWROUTE layouts; DEL has the same
            defer { h.pointee.nlmsg_type = UInt16(type) }
            guard let r = RouteSocket.route(from: h) else { return nil }
            return type == Int32(RTM_NEWROUTE) ? .routeAdded(r) : .routeRemoved(r)
        case Int32(RTM_NEWNEIGH), Int32(RTM_DELNEIGH):
            var obj: OpaquePointer? = nil
            guard rtnl_neigh_parse(h, &obj) >= 0, let n = obj else { return nil }
            defer { rtnl_neigh_put(n) }
            guard let dst = IPAddress(nl: rtnl_neigh_get_dst(n)) else { return nil }
            let nb = Neighbour(interfaceIndex: rtnl_neigh_get_ifindex(n), address: dst, mac: nil,
                               state: UInt16(truncatingIfNeeded: rtnl_neigh_get_state(n)),
                               isProxy: UInt32(rtnl_neigh_get_flags(n)) & UInt32(NTF_PROXY) != 0)
            return type == Int32(RTM_NEWNEIGH) ? .neighbourAdded(nb) : .neighbourRemoved(nb)
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK), Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
            guard let msg = nlmsg_convert(h) else { return nil }
            nlmsg_set_proto(msg, NETLINK_ROUTE)  // nl_msg_parse finds its parser by protocol and type
            defer { nlmsg_free(msg) }
            let box = EventBox(type: type)
            _ = withExtendedLifetime(box) {
                nl_msg_parse(msg, { obj, arg in
                    guard let obj, let arg else { return }
                    let box = Unmanaged<EventBox>.fromOpaque(arg).takeUnretainedValue()
                    let kind = String(cString: nl_object_get_type(obj))
                    let o = obj  // nl_object: same pointer as the rtnl_link / rtnl_addr it is
                    if kind == "route/link" {
                        let l = RouteSocket.link(from: o)
                        box.event = box.type == Int32(RTM_NEWLINK) ? .linkAdded(l) : .linkRemoved(l)
                    } else if kind == "route/addr", let local = IPAddress(nl: rtnl_addr_get_local(o)) {
                        let a = InterfaceAddress(interfaceIndex: rtnl_addr_get_ifindex(o), address: local,
                                                 prefixLength: UInt8(clamping: rtnl_addr_get_prefixlen(o)),
                                                 flags: rtnl_addr_get_flags(o), scope: UInt8(clamping: rtnl_addr_get_scope(o)))
                        box.event = box.type == Int32(RTM_NEWADDR) ? .addressAdded(a) : .addressRemoved(a)
                    }
                }, Unmanaged.passUnretained(box).toOpaque())
            }
            return box.event
        default:
            return nil
        }
    }

    deinit { stop() }
}

final class EventBox {
    let type: Int32
    var event: RouteEvent?
    init(type: Int32) { self.type = type }
}
