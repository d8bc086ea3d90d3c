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

    /// Creates interface `name` (or attaches to an existing persistent one) in `namespace`.
    /// `multiQueue` sets IFF_MULTI_QUEUE so more queues can be attached with `addQueue()`.
    /// `persist` keeps the interface after the descriptor closes (TUNSETPERSIST); `owner`/`group`
    /// let an unprivileged user open it later. The corresponding C calls are `open("/dev/net/tun")`
    /// and `ioctl(TUNSETIFF)`.
    public init(name: String, namespace: NetworkNamespace = .current, multiQueue: Bool = false, persist: Bool = false,
                owner: UInt32? = nil, group: UInt32? = nil) throws(TunnelError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/"), !name.contains(" ") else {
            throw TunnelError(operation: "create", object: "TUN interface \"\(name)\"", detail: "interface names are 1-15 characters without '/' or spaces")
        }
        let flags = sixgate_iff_tun() | sixgate_iff_no_pi() | (multiQueue ? sixgate_iff_multi_queue() : 0)
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
        if persist, sixgate_tun_set_persist(fd, 1) != 0 { let e = TunnelError.syscall("ioctl(TUNSETPERSIST)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
        if let owner, sixgate_tun_set_owner(fd, owner) != 0 { let e = TunnelError.syscall("ioctl(TUNSETOWNER)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
        if let group, sixgate_tun_set_group(fd, group) != 0 { let e = TunnelError.syscall("ioctl(TUNSETGROUP)", object: "TUN interface \(actual)"); Glibc.close(fd); throw e }
    }

    private init(fd: Int32, name: String) { self.fd = fd; self.name = name }

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
        let (fd, n) = try Self.open(name: name, flags: sixgate_iff_tun() | sixgate_iff_no_pi() | sixgate_iff_multi_queue()).get()
        return TunDevice(fd: fd, name: n)
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

    /// Waits until a packet can be read, up to `timeoutMilliseconds`. The corresponding C function is `poll`.
    public func waitReadable(timeoutMilliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, timeoutMilliseconds) > 0
    }
}
