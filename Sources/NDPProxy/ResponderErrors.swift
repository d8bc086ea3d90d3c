// What a responder counts, and the errors the NDP proxy reports (subject, reason, errno).
import SixgateIO
import PacketKit
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a responder has seen and done.
public struct ResponderStatistics: Sendable, Equatable, CustomStringConvertible {
    public var received: UInt64 = 0
    public var answered: UInt64 = 0
    /// Failed RFC 4861 §7.1.1 validation (hop limit, checksum, code, length, addresses, options).
    public var invalid: UInt64 = 0
    /// Not an IPv6 packet PacketKit could read (truncated, bad version, extension headers in the way).
    public var malformed: UInt64 = 0
    public var outsidePrefix: UInt64 = 0
    /// `auto` targets the kernel does not route through another interface.
    public var notRouted: UInt64 = 0
    public var excludedByList: UInt64 = 0
    /// `iface` targets no host on the inner interface answered for (within the timeout, or cached).
    public var innerSilent: UInt64 = 0
    /// Our own solicitations sent on the inner interface, and the advertisements that came back.
    public var innerSolicitations: UInt64 = 0
    public var innerAnswers: UInt64 = 0
    public var local: UInt64 = 0
    /// Over the rate limit (per source or overall).
    public var rateLimited: UInt64 = 0
    public var sendErrors: UInt64 = 0

    mutating func add(_ o: ResponderStatistics) {
        received += o.received; answered += o.answered; invalid += o.invalid; malformed += o.malformed
        outsidePrefix += o.outsidePrefix; notRouted += o.notRouted; excludedByList += o.excludedByList
        innerSilent += o.innerSilent; innerSolicitations += o.innerSolicitations; innerAnswers += o.innerAnswers
        local += o.local; rateLimited += o.rateLimited; sendErrors += o.sendErrors
    }

    public var description: String {
        "received \(received) answered \(answered) invalid \(invalid) malformed \(malformed) outside-prefix \(outsidePrefix) not-routed \(notRouted) "
            + "inner-silent \(innerSilent) inner-solicitations \(innerSolicitations) inner-answers \(innerAnswers) "
            + "excluded \(excludedByList) local \(local) rate-limited \(rateLimited) send-errors \(sendErrors)"
    }
}

/// Why the NDP proxy could not do something: what it is about (`subject`), the reason in words,
/// and the error underneath kept typed (RouteKit's, AddressPool's) or the errno, up to the message
/// the executable prints (issue 27).
public struct NDPProxyError: Error, CustomStringConvertible, Sendable {
    public enum Subject: Sendable, Equatable {
        /// A command line in one of the three dialects.
        case commandLine
        case interface(String)
        /// An `iface` rule's inner interface.
        case innerInterface(String)
        /// The addresses the interface holds (for `ignore_local`).
        case addresses(interface: String)
        /// A kernel-mode rule's lease store.
        case leaseStore(String)
        /// The kernel's proxy neighbour entries on an interface.
        case proxyEntries(interface: String)
        case routerAdvertisements(interface: String)
        /// A socket, named by what it is for.
        case socket(String)
    }
    public let subject: Subject
    /// What went wrong, as the operator reads it.
    public let reason: String
    /// The error underneath, when another module's (a RouteKitError, an AddressPoolError).
    public let underlying: (any Error & Sendable)?
    /// The errno of the system call that failed, when one did.
    public let errno: Int32?

    init(_ subject: Subject, _ reason: String, underlying: (any Error & Sendable)? = nil, errno: Int32? = nil) {
        self.subject = subject; self.reason = reason; self.underlying = underlying; self.errno = errno
    }
    init(_ subject: Subject, _ underlying: any Error & Sendable) {
        self.init(subject, "\(underlying)", underlying: underlying)
    }

    public var description: String {
        switch subject {
        case .commandLine: reason
        case .interface(let n): "interface \(n): \(reason)"
        case .innerInterface(let n): "inner interface \(n): \(reason)"
        case .addresses(let n): "addresses of \(n): \(reason)"
        case .leaseStore(let p): "lease store \(p): \(reason)"
        case .proxyEntries(let n): "proxy entries on \(n): \(reason)"
        case .routerAdvertisements(let n): "router advertisements on \(n): \(reason)"
        case .socket(let what): "\(what): \(reason)"
        }
    }
}

/// Answers solicitations on one interface according to one rule, on a thread of its own.

/// Opens a packet socket (SixgateIO) on interface `name` inside `namespace`; the error names the
/// socket, the reason and the errno, with the capability hint for EPERM.
func openPacketSocket(in namespace: NetworkNamespace, _ name: String, index: Int32, _ kind: PacketSocket.Kind) throws(NDPProxyError) -> PacketSocket {
    do {
        return try PacketSocket(interfaceIndex: index, interfaceName: name, kind: kind, namespace: namespace)
    } catch {
        throw NDPProxyError(error)
    }
}

extension NDPProxyError {
    /// A socket that could not be opened or used (SixgateIO's error: the C function and the errno).
    init(_ e: SystemCallError) {
        let hint = e.errno == EPERM ? " (needs CAP_NET_RAW: run as root)" : ""
        let reason = e.call == "setns" ? "\(e.call): \(String(cString: strerror(e.errno)))" : "\(String(cString: strerror(e.errno)))\(hint)"
        self.init(.socket(e.object), reason, underlying: e, errno: e.errno)
    }
}

