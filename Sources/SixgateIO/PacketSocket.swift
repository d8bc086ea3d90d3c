// Link-layer and ICMPv6 sockets for neighbour discovery (NDPProxy's responder and router
// advertiser), beside the TUN device and UDP sockets of this layer: each opened inside a network
// namespace, owned by an object that closes it, every call through `Syscall` (EINTR retried, the
// errno kept and named with the C function in SixgateSystem's SystemCallError).
import CPacketSocket
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// The one door for system calls: retries EINTR and hands back the result with the errno of a failure.
public enum Syscall {
    /// Calls `body` until it is not interrupted; returns its result and, when it failed (< 0), errno.
    @inline(__always)
    public static func retrying<T: BinaryInteger>(_ body: () -> T) -> (result: T, errno: Int32) {
        while true {
            let r = body()
            if r >= 0 { return (r, 0) }
            let e = Glibc.errno
            if e == EINTR { continue }
            return (r, e)
        }
    }

    /// Opens a descriptor with `body` inside `namespace`; throws naming `function` and `object`.
    public static func open(in namespace: NetworkNamespace, _ function: String, object: String, _ body: () -> Int32) throws(SystemCallError) -> Int32 {
        let opened: (result: Int32, errno: Int32)
        do {
            opened = try namespace.perform { () throws(RouteKitError) -> (result: Int32, errno: Int32) in retrying(body) }
        } catch {
            let e: Int32 = switch error.code { case .notFound: ENOENT; case .permissionDenied: EPERM; default: EINVAL }
            throw SystemCallError("setns", "\(object) in \(namespace)", errno: e)
        }
        guard opened.result >= 0 else { throw SystemCallError(function, object, errno: opened.errno) }
        return opened.result
    }
}

/// An AF_PACKET socket on one interface for ICMPv6 neighbour discovery frames, filtered in the
/// kernel (classic BPF) to neighbour solicitations or to one ICMPv6 type, read and written in
/// batches of Ethernet frames.
public final class PacketSocket: @unchecked Sendable {
    public enum Kind: Sendable, Equatable {
        /// Neighbour solicitations (type 135), with the interface in all-multicast mode for this
        /// socket so solicitations to groups the host did not join arrive too.
        case neighborSolicitations
        /// One ICMPv6 type (136: neighbour advertisements).
        case icmpv6(UInt8)
    }

    public let fd: Int32
    public let interfaceIndex: Int32
    let object: String
    /// Frames one batch call moves at most.
    public static let batchCapacity = Int(SIXGATE_PACKET_BATCH)

    /// Opens the socket on `interfaceIndex` (named `interfaceName` in errors) in `namespace`. Needs
    /// CAP_NET_RAW. The corresponding C calls are `socket(AF_PACKET)`, `setsockopt(SO_ATTACH_FILTER)`,
    /// `bind` and `setsockopt(PACKET_ADD_MEMBERSHIP)`.
    public init(interfaceIndex: Int32, interfaceName: String, kind: Kind, namespace: NetworkNamespace = .current) throws(SystemCallError) {
        self.interfaceIndex = interfaceIndex
        object = "packet socket on \(interfaceName)"
        switch kind {
        case .neighborSolicitations:
            fd = try Syscall.open(in: namespace, "socket(AF_PACKET)", object: object) { sixgate_ns_socket(interfaceIndex) }
        case .icmpv6(let type):
            fd = try Syscall.open(in: namespace, "socket(AF_PACKET)", object: object) { sixgate_ndp_socket(interfaceIndex, Int32(type)) }
        }
    }

    deinit { close(fd) }

    /// The interface's MAC address. The corresponding C call is `ioctl(SIOCGIFHWADDR)`.
    public func macAddress() throws(SystemCallError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 6)
        let r = Syscall.retrying { sixgate_interface_mac(interfaceIndex, &bytes) }
        guard r.result == 0 else { throw SystemCallError("ioctl(SIOCGIFHWADDR)", object, errno: r.errno) }
        return bytes
    }

    /// Reads up to `count` (at most `batchCapacity`) frames without waiting: frame i into
    /// `frames + i * stride`, its length into `lengths[i]` (0 when it was truncated). Returns how many
    /// (0 when none waited, -1 on an error). The corresponding C function is `recvmmsg`.
    @inline(__always)
    public func receive(into frames: UnsafeMutableRawPointer, stride: Int, count: Int, lengths: UnsafeMutablePointer<UInt32>) -> Int {
        let r = Syscall.retrying { sixgate_packet_receive_batch(fd, frames, stride, count, lengths) }
        if r.result >= 0 { return Int(r.result) }
        return r.errno == EAGAIN || r.errno == EWOULDBLOCK ? 0 : -1
    }

    /// Sends `count` (at most `batchCapacity`) Ethernet frames, frame i at `frames + i * stride` of
    /// `lengths[i]` bytes, out of the interface. Returns how many went. The corresponding C function is `sendmmsg`.
    @inline(__always)
    public func send(frames: UnsafeRawPointer, stride: Int, lengths: UnsafePointer<UInt32>, count: Int) -> Int {
        max(0, Int(Syscall.retrying { sixgate_packet_send_batch(fd, interfaceIndex, frames, stride, lengths, count) }.result))
    }

    /// Sends one Ethernet frame. The corresponding C function is `sendto`.
    @discardableResult
    public func send(frame: UnsafeRawBufferPointer) -> Result<Int, SystemCallError> {
        let r = Syscall.retrying { sixgate_packet_send(fd, interfaceIndex, frame.baseAddress, frame.count) }
        return r.result >= 0 ? .success(r.result) : .failure(SystemCallError("sendto", object, errno: r.errno))
    }
}

/// A raw ICMPv6 socket for a router on one interface: only router solicitations pass (ICMP6_FILTER),
/// it joins all-routers there, sends with hop limit 255 (RFC 4861 §6.1.2) and reports each
/// message's hop limit; the kernel fills in the source address and the checksum.
public final class RouterSocket: @unchecked Sendable {
    public let fd: Int32
    public let interfaceIndex: Int32
    let object: String

    /// The corresponding C calls are `socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)` and its `setsockopt`s.
    public init(interfaceIndex: Int32, interfaceName: String, namespace: NetworkNamespace = .current) throws(SystemCallError) {
        self.interfaceIndex = interfaceIndex
        object = "router socket on \(interfaceName)"
        fd = try Syscall.open(in: namespace, "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)", object: object) { sixgate_router_socket(interfaceIndex) }
    }

    deinit { close(fd) }

    /// Waits up to `timeoutMilliseconds` for one message: its length (0 on timeout), the source and
    /// the hop limit it arrived with. The corresponding C functions are `poll` and `recvmsg`.
    public func receive(into buffer: UnsafeMutableRawPointer, capacity: Int, timeoutMilliseconds: Int32) -> (length: Int, source: [UInt8], hopLimit: Int32) {
        var source = [UInt8](repeating: 0, count: 16)
        var hopLimit: Int32 = -1
        let r = Syscall.retrying { source.withUnsafeMutableBufferPointer { sixgate_icmp6_receive(fd, buffer, capacity, $0.baseAddress, &hopLimit, timeoutMilliseconds) } }
        return (max(0, r.result), source, hopLimit)
    }

    /// Sends an ICMPv6 message to `destination` (16 bytes) on the interface. The corresponding C
    /// function is `sendmsg`.
    public func send(_ message: [UInt8], to destination: [UInt8]) -> Result<Int, SystemCallError> {
        let r = Syscall.retrying { message.withUnsafeBytes { sixgate_icmp6_send(fd, $0.baseAddress, $0.count, destination, interfaceIndex) } }
        return r.result >= 0 ? .success(r.result) : .failure(SystemCallError("sendmsg", object, errno: r.errno))
    }
}
