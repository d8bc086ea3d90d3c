// The TUN device (Documentation/networking/tuntap.rst): an interface whose packets a program reads
// and writes through /dev/net/tun, one IP packet per read(2)/write(2) with IFF_NO_PI.
import CTunnel
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

/// A TUN interface carrying raw IPv4/IPv6 packets (IFF_TUN | IFF_NO_PI).
public final class TunDevice: @unchecked Sendable {
    /// The queue's descriptor (non-blocking).
    public let fd: Int32
    /// The interface name the kernel gave.
    public let name: String
    /// Whether packets carry a `VirtioNetHeader` (opened with `offload`).
    public let offload: Bool
    /// Whether the kernel also hands over UDP super-packets (USO, Linux 6.2; with `udpOffload`).
    public private(set) var udpOffload = false

    /// Creates interface `name` (or attaches to an existing persistent one) in `namespace`.
    /// `multiQueue` sets IFF_MULTI_QUEUE so more queues can be attached with `addQueue()`.
    /// `persist` keeps the interface after the descriptor closes (TUNSETPERSIST); `owner`/`group`
    /// let an unprivileged user open it later. The corresponding C calls are `open("/dev/net/tun")`
    /// and `ioctl(TUNSETIFF)`.
    /// `offload` opens it with IFF_VNET_HDR and turns on checksum and TCP segmentation offload
    /// (TUNSETOFFLOAD with TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6): every packet read or written then
    /// starts with a `VirtioNetHeader` (`VirtioNetHeader.size` bytes), and TCP arrives in
    /// super-packets of up to 64 KiB. Kernels without it fail with the ioctl named.
    public init(name: String, namespace: NetworkNamespace = .current, multiQueue: Bool = false, persist: Bool = false,
                owner: UInt32? = nil, group: UInt32? = nil, offload: Bool = false, udpOffload: Bool = false) throws(TunnelError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/"), !name.contains(" ") else {
            throw TunnelError(operation: "create", object: "TUN interface \"\(name)\"", detail: "interface names are 1-15 characters without '/' or spaces")
        }
        let flags = sixgate_iff_tun() | sixgate_iff_no_pi() | (multiQueue ? sixgate_iff_multi_queue() : 0) | (offload ? sixgate_iff_vnet_hdr() : 0)
        let result: Result<(Int32, String), TunnelError>
        do {
            result = try namespace.perform { () throws(RouteKitError) -> Result<(Int32, String), TunnelError> in
                Self.open(name: name, flags: flags)
            }
        } catch {
            throw TunnelError(operation: "enter", object: "\(namespace)", detail: error.description)
        }
        let (fd, actual) = try result.get()
        self.fd = fd
        self.name = actual
        self.offload = offload
        if offload {
            let rc = udpOffload ? sixgate_tun_enable_offload_uso(fd) : sixgate_tun_enable_offload(fd)
            if rc < 0 {
                let e = TunnelError.syscall("ioctl(TUNSETOFFLOAD)", object: "TUN interface \(actual)", hint: "the kernel lacks TUN offloads; open it without")
                Glibc.close(fd); throw e
            }
            self.udpOffload = rc == 1
        }
        if persist, sixgate_tun_set_persist(fd, 1) != 0 { let e = TunnelError.syscall("ioctl(TUNSETPERSIST)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
        if let owner, sixgate_tun_set_owner(fd, owner) != 0 { let e = TunnelError.syscall("ioctl(TUNSETOWNER)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
        if let group, sixgate_tun_set_group(fd, group) != 0 { let e = TunnelError.syscall("ioctl(TUNSETGROUP)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
    }

    private init(fd: Int32, name: String, offload: Bool) { self.fd = fd; self.name = name; self.offload = offload }

    static func open(name: String, flags: Int16) -> Result<(Int32, String), TunnelError> {
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(.syscall("open(/dev/net/tun)", object: "TUN interface \(name)", hint: "is the tun module loaded?")) }
        var buf = [CChar](repeating: 0, count: 16)
        for (i, c) in name.utf8.enumerated() { buf[i] = CChar(bitPattern: c) }
        if sixgate_tun_set_iff(fd, &buf, flags) != 0 {
            let e = TunnelError.syscall("ioctl(TUNSETIFF)", object: "TUN interface \(name)",
                                        hint: Glibc.errno == EBUSY ? "the interface exists and is not a free TUN device" : nil)
            Glibc.close(fd)
            return .failure(e)
        }
        let actual = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return .success((fd, actual))
    }

    /// Attaches one more queue to a multi-queue device (its own descriptor, for another thread).
    public func addQueue() throws(TunnelError) -> TunDevice {
        let (fd, n) = try Self.open(name: name, flags: sixgate_iff_tun() | sixgate_iff_no_pi() | sixgate_iff_multi_queue() | (offload ? sixgate_iff_vnet_hdr() : 0)).get()
        if offload, (udpOffload ? sixgate_tun_enable_offload_uso(fd) : sixgate_tun_enable_offload(fd)) < 0 {
            let e = TunnelError.syscall("ioctl(TUNSETOFFLOAD)", object: "TUN interface \(n)"); Glibc.close(fd); throw e
        }
        let queue = TunDevice(fd: fd, name: n, offload: offload)
        queue.udpOffload = udpOffload
        return queue
    }

    deinit { Glibc.close(fd) }

    /// Reads one packet; returns its length, 0 when none is waiting, -1 on error (errno set).
    /// The corresponding C function is `read`.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            return errno == EAGAIN ? 0 : -1
        }
    }

    /// Writes one packet. Returns false if the kernel refused it (errno set); a full queue (EAGAIN)
    /// drops the packet, as a router would. The corresponding C function is `write`.
    @inline(__always) @discardableResult
    public func write(_ packet: UnsafeRawBufferPointer) -> Bool {
        while true {
            let n = Glibc.write(fd, packet.baseAddress, packet.count)
            if n >= 0 { return true }
            if errno == EINTR { continue }
            return false
        }
    }

    /// Writes one packet behind a header (an offload device's `VirtioNetHeader`) in one call, without
    /// copying them together. The corresponding C function is `writev`.
    @inline(__always) @discardableResult
    public func write(header: UnsafeRawBufferPointer, packet: UnsafeRawBufferPointer) -> Bool {
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: packet.baseAddress), iov_len: packet.count))
        return withUnsafePointer(to: &iov) { p in
            p.withMemoryRebound(to: iovec.self, capacity: 2) { v in
                while true {
                    if writev(fd, v, 2) >= 0 { return true }
                    if errno == EINTR { continue }
                    return false
                }
            }
        }
    }

    /// Writes one packet gathered from `count` vectors (an offload device's header first), as a
    /// coalesced super-packet is written without copying its segments together. The corresponding C
    /// function is `writev`.
    @inline(__always) @discardableResult
    public func write(vectors: UnsafePointer<iovec>, count: Int) -> Bool {
        while true {
            if writev(fd, vectors, Int32(count)) >= 0 { return true }
            if errno == EINTR { continue }
            return false
        }
    }

    /// Waits until a packet can be read, up to `timeoutMilliseconds`. The corresponding C function is `poll`.
    public func waitReadable(timeoutMilliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, timeoutMilliseconds) > 0
    }
}

/// The header in front of every packet of an offload TUN device (struct virtio_net_hdr, 10 bytes,
/// little-endian): whether the transport checksum is still to be completed and whether the packet
/// is a TCP super-packet to be cut into segments (generic segmentation offload).
public struct VirtioNetHeader: Sendable, Equatable {
    public static let size = 10
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the 16-bit checksum at `checksumStart + checksumOffset` holds only
    /// the pseudo-header sum; the one's-complement sum from `checksumStart` to the end completes it.
    public static let needsChecksum: UInt8 = 1
    public enum Segmentation: UInt8, Sendable { case none = 0, tcp4 = 1, udp = 3, tcp6 = 4, udpL4 = 5 }

    public var flags: UInt8 = 0
    /// VIRTIO_NET_HDR_GSO_*, without the ECN bit (0x80).
    public var segmentationType: UInt8 = 0
    /// Bytes of headers (IP + TCP) in front of the payload that is segmented.
    public var headerLength: UInt16 = 0
    /// Payload bytes per segment.
    public var segmentSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    /// Reads the header at the start of `bytes` (at least `size` long).
    @inline(__always)
    public init(_ bytes: UnsafeRawBufferPointer) {
        flags = bytes[0]; segmentationType = bytes[1]
        headerLength = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        segmentSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    /// Writes the header into the first `size` bytes of `bytes`.
    @inline(__always)
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        bytes[0] = flags; bytes[1] = segmentationType
        bytes.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        bytes.storeBytes(of: segmentSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        bytes.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }
}
