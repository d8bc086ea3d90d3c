// The door to the kernel's routing state: one NETLINK_ROUTE socket (libnl-3), opened in the
// caller's network namespace or in a named one (`ip netns` style).
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// A network namespace to work in.
public enum NetworkNamespace: Hashable, Sendable, CustomStringConvertible {
    /// The calling thread's namespace.
    case current
    /// A namespace made by `ip netns add NAME` (bound at /var/run/netns/NAME).
    case named(String)

    public var description: String {
        switch self {
        case .current: return "the current network namespace"
        case .named(let n): return "network namespace \(n)"
        }
    }

    /// Runs `body` with the calling thread switched into this namespace, then switches back.
    /// Sockets and /proc/sys files opened inside stay bound to the namespace afterwards.
    /// The corresponding C function is `setns`.
    public func perform<T>(_ body: () throws(RouteKitError) -> T) throws(RouteKitError) -> T {
        guard case .named(let name) = self else { return try body() }
        guard !name.isEmpty, !name.contains("/") else {
            throw RouteKitError(.invalidArgument, operation: "enter", object: description, detail: "namespace names cannot contain '/'")
        }
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { throw RouteKitError(errno: errno, operation: "open /proc/thread-self/ns/net", object: description) }
        defer { close(original) }
        let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard target >= 0 else {
            let e = errno
            throw RouteKitError(e == ENOENT ? .notFound : RouteKitError.Code(errno: e), operation: "open /var/run/netns/\(name)",
                                object: description, detail: e == ENOENT ? "no such namespace (see `ip netns list`)" : String(cString: strerror(e)))
        }
        defer { close(target) }
        guard sixgate_setns_net(target) == 0 else { throw RouteKitError(errno: errno, operation: "setns", object: description) }
        defer {
            // Going back must not fail silently: a thread left in the wrong namespace corrupts later calls.
            if sixgate_setns_net(original) != 0 { fatalError("RouteKit: cannot return to the original network namespace: errno \(errno)") }
        }
        return try body()
    }
}

/// A RouteKit failure: which operation on which object, and why, with a hint where one helps.
public struct RouteKitError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kinds of failure callers switch on.
    public enum Code: Hashable, Sendable {
        /// The object exists already (EEXIST).
        case exists
        /// No such interface (ENODEV, or a name the kernel does not know).
        case noSuchInterface
        /// No such object (route, address, neighbour, namespace).
        case notFound
        /// Needs CAP_NET_ADMIN in the namespace (EPERM/EACCES).
        case permissionDenied
        /// The kernel or RouteKit refused an argument (EINVAL, bad prefix).
        case invalidArgument
        /// No route to the destination (ENETUNREACH/EHOSTUNREACH).
        case unreachable
        /// Anything else, with libnl's error code.
        case other(Int32)

        init(errno e: Int32) {
            switch e {
            case EEXIST: self = .exists
            case ENODEV: self = .noSuchInterface
            case ENOENT, ESRCH: self = .notFound
            case EPERM, EACCES: self = .permissionDenied
            case EINVAL: self = .invalidArgument
            case ENETUNREACH, EHOSTUNREACH: self = .unreachable
            default: self = .other(e)
            }
        }

        init(libnl code: Int32) {
            switch -abs(code) {
            case -NLE_EXIST: self = .exists
            case -NLE_NODEV: self = .noSuchInterface
            case -NLE_OBJ_NOTFOUND, -NLE_NOADDR: self = .notFound
            case -NLE_PERM, -NLE_NOACCESS: self = .permissionDenied
            case -NLE_INVAL, -NLE_RANGE, -NLE_AF_NOSUPPORT: self = .invalidArgument
            default: self = .other(abs(code))
            }
        }
    }

    public var code: Code
    /// What was tried ("add route", "add address").
    public var operation: String
    /// The object, as an operator would name it ("2001:db8::/64 dev tun0").
    public var object: String
    /// The kernel's or libnl's reason.
    public var detail: String

    public init(_ code: Code, operation: String, object: String, detail: String) {
        self.code = code
        self.operation = operation
        self.object = object
        self.detail = detail
    }

    init(libnl rc: Int32, operation: String, object: String) {
        self.init(Code(libnl: rc), operation: operation, object: object, detail: String(cString: nl_geterror(rc)))
    }

    init(errno e: Int32, operation: String, object: String) {
        self.init(Code(errno: e), operation: operation, object: object, detail: String(cString: strerror(e)))
    }

    public var description: String {
        var text = "\(operation) \(object): \(detail)"
        switch code {
        case .permissionDenied: text += " (needs root or CAP_NET_ADMIN in this network namespace)"
        case .exists: text += " (already present; use ensure… to accept an equal existing object)"
        default: break
        }
        return text
    }
}

/// One NETLINK_ROUTE socket. Not safe for concurrent use: give each task its own, or serialise.
public final class RouteSocket {
    let sock: OpaquePointer
    /// The namespace the socket is bound to.
    public let namespace: NetworkNamespace
    /// Sequence numbers of batch requests (high bit set; libnl's own stay below).
    var batchSequence: UInt32 = 0

    /// Opens and connects a socket in `namespace`. The corresponding C functions are
    /// `nl_socket_alloc` and `nl_connect`.
    public init(namespace: NetworkNamespace = .current) throws(RouteKitError) {
        self.namespace = namespace
        sock = try namespace.perform { () throws(RouteKitError) -> OpaquePointer in
            guard let s = nl_socket_alloc() else {
                throw RouteKitError(.other(NLE_NOMEM), operation: "open", object: "netlink socket", detail: "out of memory")
            }
            let rc = nl_connect(s, NETLINK_ROUTE)
            if rc < 0 {
                nl_socket_free(s)
                throw RouteKitError(libnl: rc, operation: "connect", object: "NETLINK_ROUTE socket in \(namespace)")
            }
            // libnl's default 32 KiB buffers are smaller than one batch chunk and than a large
            // dump's bursts; the kernel caps this at net.core.{w,r}mem_max (doubled).
            _ = nl_socket_set_buffer_size(s, 1 << 20, 1 << 20)
            return s
        }
    }

    deinit { nl_socket_free(sock) }

    /// The interface index for `name`, or `.noSuchInterface`.
    public func interfaceIndex(_ name: String) throws(RouteKitError) -> Int32 {
        for l in try links() where l.name == name { return l.index }
        throw RouteKitError(.noSuchInterface, operation: "find", object: "interface \(name)", detail: "no such interface in \(namespace)")
    }

    // MARK: Dumps parsed message by message

    /// Sends `message` (consumed) and calls `handle` for every valid reply message. A dump
    /// (NLM_F_DUMP) ends with NLMSG_DONE; any other query is sent with NLM_F_ACK and read until
    /// the ACK, which keeps libnl's sequence numbers in step for the next request.
    /// The corresponding C functions are `nl_send_auto` and `nl_recvmsgs`.
    func request(_ message: OpaquePointer, operation: String, object: String, _ handle: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(RouteKitError) {
        defer { nlmsg_free(message) }
        let isDump = Int32(nlmsg_hdr(message).pointee.nlmsg_flags) & NLM_F_DUMP == NLM_F_DUMP
        if isDump { nl_socket_disable_auto_ack(sock) }
        let sent = nl_send_auto(sock, message)
        if isDump { nl_socket_enable_auto_ack(sock) }
        if sent < 0 { throw RouteKitError(libnl: sent, operation: operation, object: object) }
        try receive(untilAck: !isDump, operation: operation, object: object, handle)
    }

    func receive(untilAck: Bool, operation: String, object: String, _ handle: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(RouteKitError) {
        try withoutActuallyEscaping(handle) { (h: @escaping (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(RouteKitError) in
            let box = HandlerBox(h)
            let ref = Unmanaged.passRetained(box)
            defer { ref.release() }
            guard let cb = nl_cb_clone(nl_socket_get_cb(sock)) else {
                throw RouteKitError(.other(NLE_NOMEM), operation: operation, object: object, detail: "out of memory")
            }
            defer { nl_cb_put(cb) }
            nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, { msg, arg in
                guard let msg, let arg, let hdr = nlmsg_hdr(msg) else { return Int32(NL_SKIP.rawValue) }
                Unmanaged<HandlerBox>.fromOpaque(arg).takeUnretainedValue().handle(hdr)
                return Int32(NL_OK.rawValue)
            }, ref.toOpaque())
            nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, { _, arg in
                if let arg { Unmanaged<HandlerBox>.fromOpaque(arg).takeUnretainedValue().acked = true }
                return Int32(NL_STOP.rawValue)
            }, ref.toOpaque())
            // Keep the kernel's errno (libnl folds some, such as ENETUNREACH, into NLE_FAILURE).
            nl_cb_err(cb, NL_CB_CUSTOM, { _, err, arg in
                if let arg, let err {
                    let box = Unmanaged<HandlerBox>.fromOpaque(arg).takeUnretainedValue()
                    box.kernelErrno = -err.pointee.error
                    box.acked = true
                }
                return Int32(NL_STOP.rawValue)
            }, ref.toOpaque())
            var rounds = 0
            repeat {
                let rc = nl_recvmsgs(sock, cb)
                if box.kernelErrno != 0 { throw RouteKitError(errno: box.kernelErrno, operation: operation, object: object) }
                if rc < 0 { throw RouteKitError(libnl: rc, operation: operation, object: object) }
                rounds += 1
            } while untilAck && !box.acked && rounds < 64
            if box.kernelErrno != 0 { throw RouteKitError(errno: box.kernelErrno, operation: operation, object: object) }
        }
    }

    /// Sends a request built by libnl (consumed) and waits for the kernel's ACK or error.
    func transact(_ build: (UnsafeMutablePointer<OpaquePointer?>) -> Int32, operation: String, object: String) throws(RouteKitError) {
        var msg: OpaquePointer? = nil
        let rc = build(&msg)
        guard rc >= 0, let msg else { throw RouteKitError(libnl: rc, operation: operation, object: object) }
        try request(msg, operation: operation, object: object) { _ in }
    }

}

final class HandlerBox {
    let handle: (UnsafeMutablePointer<nlmsghdr>) -> Void
    var acked = false
    var kernelErrno: Int32 = 0
    init(_ handle: @escaping (UnsafeMutablePointer<nlmsghdr>) -> Void) { self.handle = handle }
}

// MARK: nl_addr conversion

extension IPAddress {
    /// A new libnl address (caller must `nl_addr_put`).
    func nlAddress(prefixLength: UInt8? = nil) -> OpaquePointer? {
        let b = bytes
        let family = b.count == 4 ? AF_INET : AF_INET6
        let a = b.withUnsafeBytes { nl_addr_build(family, $0.baseAddress, $0.count) }
        if let a { nl_addr_set_prefixlen(a, Int32(prefixLength ?? bitWidth)) }
        return a
    }

    /// Reads a libnl address (nil for an empty or non-IP address).
    init?(nl a: OpaquePointer?) {
        guard let a, nl_addr_get_len(a) == 4 || nl_addr_get_len(a) == 16, let p = nl_addr_get_binary_addr(a) else { return nil }
        self.init(bytes: UnsafeRawBufferPointer(start: p, count: Int(nl_addr_get_len(a))))
    }
}

extension IPPrefix {
    init?(nl a: OpaquePointer?) {
        guard let a else { return nil }
        let family = nl_addr_get_family(a)
        let len = UInt8(clamping: nl_addr_get_prefixlen(a))
        if nl_addr_get_len(a) == 0 {
            // A zero-length destination is the default route.
            if family == AF_INET { self = .v4(IPv4Prefix(containing: .any, length: 0)); return }
            if family == AF_INET6 { self = .v6(IPv6Prefix(containing: .unspecified, length: 0)); return }
            return nil
        }
        guard let address = IPAddress(nl: a) else { return nil }
        self.init(containing: address, length: len)
    }
}
