// The outer transport: one dual-stack UDP socket (IPv6 with IPV6_V6ONLY off, so IPv4 peers appear
// as ::ffff:a.b.c.d), read in batches with recvmmsg(2) and written in batches with sendmmsg(2),
// through buffers allocated once.
import CTunnel
import PacketKit
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

/// A peer's outer address and port, kept as the kernel's sockaddr_in6 (IPv4 as v4-mapped).
///
/// `source` is the local address the peer's datagrams arrived at (the "sticky" source): replies
/// go out from it, not from whatever address the kernel's route lookup would pick. That matters on
/// a gateway with more than one address, and most for an anycast endpoint shared by a group of
/// gateways: a reply from the uplink's own address would make the client roam to that address and
/// never reach the group's other gateways. Two endpoints are equal when address and port are;
/// `source` travels with them.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    /// The local address to send from (nil: the kernel chooses).
    public var source: IPAddress?

    public init(address: IPAddress, port: UInt16, source: IPAddress? = nil) { self.address = address; self.port = port; self.source = source }

    public static func == (a: Endpoint, b: Endpoint) -> Bool { a.address == b.address && a.port == b.port }
    public func hash(into h: inout Hasher) { h.combine(address); h.combine(port) }

    /// Parses "192.0.2.1:51820" or "[2001:db8::1]:51820" as `wg` writes endpoints.
    public init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":"),
                  let a = try? IPAddress.parse(String(text[text.index(after: text.startIndex)..<close])),
                  let p = UInt16(text[text.index(close, offsetBy: 2)...]) else { return nil }
            self.init(address: a, port: p)
        } else {
            guard let colon = text.lastIndex(of: ":"), let a = try? IPAddress.parse(String(text[..<colon])), case .v4 = a,
                  let p = UInt16(text[text.index(after: colon)...]) else { return nil }
            self.init(address: a, port: p)
        }
    }

    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }

    /// The address bytes and port, as the cookie mechanism's "source" A.
    public var cookieSource: [UInt8] {
        var out: [UInt8]
        switch address {
        case .v4(let a): out = withUnsafeBytes(of: a.rawValue.bigEndian) { Array($0) }
        case .v6(let a): out = withUnsafeBytes(of: a.rawValue.bigEndian) { Array($0) }
        }
        return out + [UInt8(port >> 8), UInt8(port & 0xff)]
    }

    var sockaddr: sockaddr_in6 {
        var s = sockaddr_in6()
        s.sin6_family = sa_family_t(AF_INET6)
        s.sin6_port = port.bigEndian
        let raw: UInt128
        switch address {
        case .v4(let a): raw = 0xffff_0000_0000 | UInt128(a.rawValue)
        case .v6(let a): raw = a.rawValue
        }
        withUnsafeMutableBytes(of: &s.sin6_addr) { $0.storeBytes(of: raw.bigEndian, as: UInt128.self) }
        return s
    }

    /// Writes a packet-information control message sending from `source`; returns its length.
    @inline(__always) static func writeSource(_ source: IPAddress, into control: UnsafeMutableRawPointer) -> Int {
        switch source {
        case .v4(let a):
            var raw = a.rawValue.bigEndian
            return withUnsafeBytes(of: &raw) { sixgate_pktinfo_source(control, 4, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        case .v6(let a):
            var raw = a.rawValue.bigEndian
            return withUnsafeBytes(of: &raw) { sixgate_pktinfo_source(control, 16, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        }
    }

    init(_ s: sockaddr_in6) {
        let raw = withUnsafeBytes(of: s.sin6_addr) { UInt128(bigEndian: $0.loadUnaligned(as: UInt128.self)) }
        if raw >> 32 == 0xffff { address = .v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: raw))) } else { address = .v6(IPv6Address(rawValue: raw)) }
        port = UInt16(bigEndian: s.sin6_port)
    }
}

/// A batch of datagram buffers, with their iovecs, addresses and mmsghdrs, allocated once and
/// reused for every `recvmmsg` or `sendmmsg`.
public final class DatagramBatch: @unchecked Sendable {
    public let capacity: Int
    public let bufferSize: Int
    /// One contiguous region: `capacity` buffers of `bufferSize` bytes.
    public let storage: UnsafeMutableRawPointer
    let iovecs: UnsafeMutablePointer<iovec>
    let names: UnsafeMutablePointer<sockaddr_in6>
    let headers: UnsafeMutablePointer<sixgate_mmsghdr>
    /// One control buffer per message (on receive: the destination, the UDP_GRO segment size, the
    /// arrival time; on send: the source and the UDP_SEGMENT size).
    let controls: UnsafeMutableRawPointer
    static let controlSpace = Int(SIXGATE_RECEIVE_CONTROL_SPACE)
    /// Each queued message's endpoint (to find runs for segmentation offload).
    let endpoints: UnsafeMutablePointer<Endpoint>
    /// The headers of the last segmented send: one per run of datagrams, pointing into `iovecs`.
    let runHeaders: UnsafeMutablePointer<sixgate_mmsghdr>
    /// The first datagram of each run (and one past the last).
    let runStarts: UnsafeMutablePointer<Int>
    /// Messages filled by the last receive.
    public private(set) var count = 0

    public init(capacity: Int = 64, bufferSize: Int = 65536) {
        self.capacity = capacity; self.bufferSize = bufferSize
        storage = .allocate(byteCount: capacity * bufferSize, alignment: 16)
        iovecs = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity); names.initialize(repeating: sockaddr_in6(), count: capacity)
        headers = .allocate(capacity: capacity); headers.initialize(repeating: sixgate_mmsghdr(), count: capacity)
        controls = .allocate(byteCount: capacity * Self.controlSpace, alignment: 16)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * Self.controlSpace)
        endpoints = .allocate(capacity: capacity)
        endpoints.initialize(repeating: Endpoint(address: .v4(IPv4Address(rawValue: 0)), port: 0), count: capacity)
        runHeaders = .allocate(capacity: capacity); runHeaders.initialize(repeating: sixgate_mmsghdr(), count: capacity)
        runStarts = .allocate(capacity: capacity + 1); runStarts.initialize(repeating: 0, count: capacity + 1)
    }

    deinit {
        storage.deallocate(); iovecs.deallocate(); names.deallocate(); headers.deallocate(); controls.deallocate()
        endpoints.deinitialize(count: capacity); endpoints.deallocate(); runHeaders.deallocate(); runStarts.deallocate()
    }

    /// The buffer of message `i`.
    @inline(__always) public func buffer(_ i: Int) -> UnsafeMutableRawPointer { storage + i * bufferSize }
    /// The length of message `i` after a receive.
    @inline(__always) public func length(_ i: Int) -> Int { Int(headers[i].msg_len) }
    /// The source of message `i` after a receive, with the local address it was sent to.
    @inline(__always) public func source(_ i: Int) -> Endpoint {
        var e = Endpoint(names[i])
        e.source = Self.destination(&headers[i].msg_hdr)
        return e
    }

    /// The size of each datagram in message `i` after a receive on a socket with receive coalescing
    /// (UDP_GRO): the message is then several datagrams back to back, all this size but the last.
    /// 0 when the message is one datagram.
    @inline(__always) public func segmentSize(_ i: Int) -> Int {
        guard headers[i].msg_hdr.msg_controllen > 0 else { return 0 }
        return Int(sixgate_udp_gro_size(&headers[i].msg_hdr))
    }

    /// When message `i` arrived, in nanoseconds of CLOCK_REALTIME (`RealtimeClock`), on a socket
    /// with `receiveTimestamps`; 0 when the kernel did not say. `RealtimeClock.nanoseconds()`
    /// minus this is how long it waited in the socket's queue.
    @inline(__always) public func receivedAt(_ i: Int) -> Int64 {
        guard headers[i].msg_hdr.msg_controllen > 0 else { return 0 }
        return sixgate_receive_timestamp(&headers[i].msg_hdr)
    }

    /// The destination address a received message's control data names.
    @inline(__always) static func destination(_ h: UnsafePointer<msghdr>) -> IPAddress? {
        guard h.pointee.msg_controllen > 0 else { return nil }
        var out: (UInt64, UInt64) = (0, 0)
        let n = withUnsafeMutableBytes(of: &out) { sixgate_pktinfo_destination(h, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        switch n {
        case 4: return withUnsafeBytes(of: out) { .v4(IPv4Address(rawValue: UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)))) }
        case 16: return withUnsafeBytes(of: out) { .v6(IPv6Address(rawValue: UInt128(bigEndian: $0.loadUnaligned(as: UInt128.self)))) }
        default: return nil
        }
    }

    /// Writes `source` as message `i`'s packet information (nil: none).
    @inline(__always) func setSource(_ i: Int, _ source: IPAddress?) {
        let control = controls + i * Self.controlSpace
        guard let source else { headers[i].msg_hdr.msg_control = nil; headers[i].msg_hdr.msg_controllen = 0; return }
        headers[i].msg_hdr.msg_control = control
        headers[i].msg_hdr.msg_controllen = Endpoint.writeSource(source, into: control)
    }

    /// Points message `i`'s header at its own address slot and `length` bytes of its buffer.
    @inline(__always)
    func setHeader(_ i: Int, length: Int) {
        iovecs[i] = iovec(iov_base: buffer(i), iov_len: length)
        headers[i].msg_hdr = msghdr()
        headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
        headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
        headers[i].msg_hdr.msg_iov = iovecs + i
        headers[i].msg_hdr.msg_iovlen = 1
        headers[i].msg_len = 0
    }

    func prepareForReceive() {
        for i in 0..<capacity {
            setHeader(i, length: bufferSize)
            headers[i].msg_hdr.msg_control = controls + i * Self.controlSpace
            headers[i].msg_hdr.msg_controllen = Self.controlSpace
        }
    }

    func setCount(_ n: Int) { count = n }

    /// Queues buffer `count` (already filled with `length` bytes) for `UDPSocket.send(_:)` to
    /// `endpoint`. Returns true when the batch is now full.
    @inline(__always) @discardableResult
    public func append(length: Int, to endpoint: Endpoint) -> Bool {
        let i = count
        precondition(i < capacity, "DatagramBatch.append past capacity")
        names[i] = endpoint.sockaddr
        endpoints[i] = endpoint
        setHeader(i, length: length)
        setSource(i, endpoint.source)
        count = i + 1
        return count == capacity
    }

    /// Queues the datagram sitting in buffer `slot` (at or after the next message's own) as the
    /// next message: how a sender that skips a slot keeps the rest in place.
    @discardableResult
    public func append(length: Int, to endpoint: Endpoint, slot: Int) -> Bool {
        let i = count
        precondition(slot >= i && slot < capacity, "DatagramBatch.append from a slot before the next message")
        let full = append(length: length, to: endpoint)
        if slot != i { iovecs[i].iov_base = buffer(slot) }
        return full
    }

    /// Empties the batch (for sending).
    @inline(__always) public func reset() { count = 0 }

    /// Groups the queued datagrams into runs the kernel segments (UDP_SEGMENT): consecutive ones to
    /// the same endpoint from the same source, all `size` bytes but the last, at most `maximumSegments`
    /// and `maximumBytes` per run. Fills `runHeaders` and `runStarts`; returns the number of runs.
    func buildRuns(maximumSegments: Int, maximumBytes: Int) -> Int {
        var runs = 0, i = 0
        while i < count {
            let size = Int(iovecs[i].iov_len)
            var j = i + 1, bytes = size
            while j < count, j - i < maximumSegments, endpoints[j] == endpoints[i], endpoints[j].source == endpoints[i].source {
                let n = Int(iovecs[j].iov_len)
                guard n <= size, bytes + n <= maximumBytes else { break }
                bytes += n; j += 1
                if n < size { break }   // a shorter datagram ends the run
            }
            runStarts[runs] = i
            var h = msghdr()
            h.msg_name = UnsafeMutableRawPointer(names + i)
            h.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            h.msg_iov = iovecs + i
            h.msg_iovlen = j - i
            // The run's control data: its first message's packet information, then the segment size.
            let control = controls + i * Self.controlSpace
            var used = 0
            if let source = endpoints[i].source { used = Endpoint.writeSource(source, into: control) }
            if j - i > 1 { used = sixgate_udp_segment_control(control, used, UInt16(size)) }
            if used > 0 { h.msg_control = control; h.msg_controllen = used }
            runHeaders[runs] = sixgate_mmsghdr(msg_hdr: h, msg_len: 0)
            runs += 1
            i = j
        }
        runStarts[runs] = count
        return runs
    }
}

/// The device's UDP socket. Rebinding to a new port swaps the socket behind the same descriptor
/// number (dup2), so threads that read it need not be told.
public final class UDPSocket: @unchecked Sendable {
    public let fd: Int32
    public private(set) var port: UInt16
    /// The firewall mark its datagrams carry (SO_MARK; 0: none), as `wg set IF fwmark N` asks:
    /// wg-quick's policy routing sends marked packets by the main table, the rest into the tunnel.
    public private(set) var mark: UInt32 = 0
    /// Whether sends hand runs of datagrams to the kernel in one buffer (UDP_SEGMENT, Linux 4.18).
    /// Turned off for good, with `offloadNote` saying why, if the kernel or the NIC refuses it.
    public private(set) var segmentationOffload = false
    /// Whether receives take runs of datagrams coalesced by the kernel (UDP_GRO, Linux 5.0).
    public private(set) var receiveCoalescing = false
    /// Whether received messages carry their arrival time (`DatagramBatch.receivedAt`,
    /// SO_TIMESTAMPNS): what queue management (`CoDel`) needs to see how long they waited.
    public private(set) var receiveTimestamps = false
    /// Whether `receiveTimestamps` was asked for (`init(timestamps:)`).
    let wantsTimestamps: Bool
    /// Why an offload was turned off at run time (nil: it was not); for the program to log once.
    public private(set) var offloadNote: String?
    /// Whether to use the offloads the kernel offers (set before the first send; `init(offload:)`).
    let wantsOffload: Bool
    /// Whether the port is shared with sibling sockets (SO_REUSEPORT; `sibling()`).
    public let sharesPort: Bool
    let namespace: NetworkNamespace

    /// Binds [::]:`port` (0 picks a free port) in `namespace`, dual-stack. The corresponding C
    /// functions are `socket`, `setsockopt(IPV6_V6ONLY)` and `bind`.
    /// `offload`: use UDP segmentation offload and receive coalescing where the kernel has them
    /// (`setsockopt(UDP_GRO)`, `getsockopt(UDP_SEGMENT)`); each is checked here, once.
    ///
    /// `sharePort` sets SO_REUSEPORT so that `sibling()` can bind more sockets to the same port: the
    /// kernel then hands each peer's datagrams (by address and port hash) to one of them, so several
    /// threads receive, each peer's packets in order on one of them.
    ///
    /// `timestamps` stamps each received datagram with its arrival time (`receiveTimestamps`).
    public init(port: UInt16, namespace: NetworkNamespace = .current, offload: Bool = false, sharePort: Bool = false,
                timestamps: Bool = false) throws(TunnelError) {
        self.namespace = namespace
        self.wantsOffload = offload
        self.sharesPort = sharePort
        self.wantsTimestamps = timestamps
        let (fd, bound) = try Self.make(port: port, namespace: namespace, sharePort: sharePort)
        self.fd = fd; self.port = bound
        if offload { enableOffloads() }
        if timestamps { receiveTimestamps = sixgate_timestamp_enable(fd) == 0 }
    }

    func enableOffloads() {
        segmentationOffload = sixgate_udp_gso_supported(fd) == 1 && offloadNote == nil
        receiveCoalescing = sixgate_udp_gro_enable(fd) == 0
    }

    /// Another socket bound to this one's port (both made with `sharePort`), with the same offloads
    /// and mark. The corresponding C call is `setsockopt(SO_REUSEPORT)` before `bind`.
    public func sibling() throws(TunnelError) -> UDPSocket {
        guard sharesPort else { throw TunnelError(operation: "add a socket", object: "UDP port \(port)", detail: "the first socket was not made with sharePort") }
        let s = try UDPSocket(port: port, namespace: namespace, offload: wantsOffload, sharePort: true, timestamps: wantsTimestamps)
        if mark != 0 { try s.setMark(mark) }
        return s
    }

    static func make(port: UInt16, namespace: NetworkNamespace, sharePort: Bool) throws(TunnelError) -> (Int32, UInt16) {
        let r: Result<(Int32, UInt16), TunnelError>
        do {
            r = try namespace.perform { () throws(RouteKitError) -> Result<(Int32, UInt16), TunnelError> in
                let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                guard fd >= 0 else { return .failure(.syscall("socket(AF_INET6, SOCK_DGRAM)", object: "UDP port \(port)")) }
                var off: Int32 = 0, big: Int32 = 8 << 20
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, 4)
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, 4)
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, 4)
                var on: Int32 = 1
                if sharePort { _ = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, 4) }
                // Each datagram's destination address, so replies leave from it (Endpoint.source).
                _ = sixgate_pktinfo_enable(fd)
                var a = sockaddr_in6(); a.sin6_family = sa_family_t(AF_INET6); a.sin6_port = port.bigEndian
                let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
                if rc != 0 {
                    let e = TunnelError.syscall("bind", object: "UDP port \(port)", hint: Glibc.errno == EADDRINUSE ? "another program listens there (see `ss -ulpn`)" : nil)
                    close(fd); return .failure(e)
                }
                var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
                _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
                return .success((fd, UInt16(bigEndian: a.sin6_port)))
            }
        } catch {
            throw TunnelError(operation: "enter", object: "\(namespace)", detail: error.description)
        }
        return try r.get()
    }

    deinit { close(fd) }

    /// Binds a new port behind the same descriptor (the mark stays).
    public func rebind(port newPort: UInt16) throws(TunnelError) {
        let (nfd, bound) = try Self.make(port: newPort, namespace: namespace, sharePort: sharesPort)
        dup2(nfd, fd)
        close(nfd)
        port = bound
        if mark != 0 { try setMark(mark) }
        if wantsOffload { enableOffloads() }
        if wantsTimestamps { receiveTimestamps = sixgate_timestamp_enable(fd) == 0 }
    }

    /// Marks every datagram sent from now on with `mark` (0 removes it). Needs CAP_NET_ADMIN.
    /// The corresponding C call is `setsockopt(SO_MARK)`.
    public func setMark(_ newMark: UInt32) throws(TunnelError) {
        var m = newMark
        guard setsockopt(fd, SOL_SOCKET, SO_MARK, &m, 4) == 0 else {
            throw .syscall("setsockopt(SO_MARK)", object: "UDP port \(port)", hint: Glibc.errno == EPERM ? "needs CAP_NET_ADMIN" : nil)
        }
        mark = newMark
    }

    /// Receives up to `batch.capacity` datagrams without blocking; returns how many.
    /// The corresponding C function is `recvmmsg`.
    public func receive(_ batch: DatagramBatch) -> Int {
        batch.prepareForReceive()
        while true {
            let n = sixgate_recvmmsg(fd, batch.headers, UInt32(batch.capacity), Int32(MSG_DONTWAIT))
            if n >= 0 { batch.setCount(Int(n)); return Int(n) }
            if errno == EINTR { continue }
            batch.setCount(0)
            return 0
        }
    }

    /// Sends one datagram, from `endpoint.source` when set (and the kernel's choice if that
    /// address is no longer this host's). The corresponding C function is `sendmsg`.
    @inline(__always) @discardableResult
    public func send(_ data: UnsafeRawBufferPointer, to endpoint: Endpoint) -> Bool {
        var a = endpoint.sockaddr
        // SIXGATE_PKTINFO_SPACE (96) bytes, which writeSource clears whole.
        var control: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutablePointer(to: &a) { name in
            withUnsafeMutableBytes(of: &control) { c in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: data.baseAddress), iov_len: data.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var h = msghdr()
                    h.msg_name = UnsafeMutableRawPointer(name)
                    h.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
                    h.msg_iov = iovp
                    h.msg_iovlen = 1
                    if let s = endpoint.source { h.msg_control = c.baseAddress; h.msg_controllen = Endpoint.writeSource(s, into: c.baseAddress!) }
                    while true {
                        let n = sendmsg(fd, &h, 0)
                        if n >= 0 { return true }
                        if errno == EINTR { continue }
                        if errno == EAGAIN { var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0); _ = poll(&p, 1, 10); continue }
                        // The address it was sent to is gone from this host (EINVAL, EADDRNOTAVAIL, ...):
                        // let the kernel choose.
                        if h.msg_controllen > 0 { h.msg_control = nil; h.msg_controllen = 0; continue }
                        return false
                    }
                }
            }
        }
    }

    public func send(_ data: [UInt8], to endpoint: Endpoint) -> Bool { data.withUnsafeBytes { send($0, to: endpoint) } }

    /// Sends every datagram queued in `batch` with `append`, then empties it; returns how many the
    /// kernel took. A datagram the kernel refuses (an unreachable peer, EMSGSIZE) is skipped, not
    /// retried, as `sendto` would lose it too. The corresponding C function is `sendmmsg`.
    ///
    /// With `segmentationOffload`, runs of datagrams to one endpoint go out as one message each
    /// (UDP_SEGMENT); if the device refuses that (EIO: no checksum offload), offload is turned off for
    /// good, `offloadNote` says why, and the rest goes out one by one. A run the kernel refuses for
    /// another reason (EINVAL: datagrams above the path MTU) goes out one by one, offload kept.
    @discardableResult
    public func send(_ batch: DatagramBatch) -> Int {
        if segmentationOffload, batch.count > 1 { return sendSegmented(batch) }
        return sendEach(batch)
    }

    /// Runs of up to 64 datagrams (UDP_MAX_SEGMENTS on older kernels) and under 64 KiB per message.
    static let segmentsPerRun = 64
    static let bytesPerRun = 65000

    func sendSegmented(_ batch: DatagramBatch) -> Int {
        let runs = batch.buildRuns(maximumSegments: Self.segmentsPerRun, maximumBytes: Self.bytesPerRun)
        var offset = 0, sent = 0
        while offset < runs {
            let n = sixgate_sendmmsg(fd, batch.runHeaders + offset, UInt32(runs - offset), 0)
            if n > 0 { sent += batch.runStarts[offset + Int(n)] - batch.runStarts[offset]; offset += Int(n); continue }
            let e = errno
            if n < 0, e == EINTR { continue }
            if n < 0, e == EAGAIN || e == ENOBUFS { var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0); _ = poll(&p, 1, 10); continue }
            let first = batch.runStarts[offset], next = batch.runStarts[offset + 1]
            if next - first > 1, e == EIO || e == EOPNOTSUPP {
                // The device cannot checksum what the kernel segments (EIO): never again on this
                // socket. (EINVAL is a run bigger than the path MTU: sent one by one below, fragmented.)
                segmentationOffload = false
                offloadNote = "UDP segmentation offload turned off: sendmsg with UDP_SEGMENT failed with \(String(cString: strerror(e))) (errno \(e)); sending one datagram per message"
                sent += sendEach(batch, from: first, to: batch.count)
                break
            }
            // Anything else (a source address gone from this host, an unreachable peer): that run
            // one datagram at a time, which knows how to fall back or skip.
            sent += sendEach(batch, from: first, to: next)
            offset += 1
        }
        batch.reset()
        return sent
    }

    /// Sends every queued datagram one message each, then empties the batch.
    func sendEach(_ batch: DatagramBatch) -> Int {
        let sent = sendEach(batch, from: 0, to: batch.count)
        batch.reset()
        return sent
    }

    /// Sends queued datagrams `start..<end` one message each.
    func sendEach(_ batch: DatagramBatch, from start: Int, to total: Int) -> Int {
        var offset = start, sent = 0
        while offset < total {
            let n = sixgate_sendmmsg(fd, batch.headers + offset, UInt32(total - offset), 0)
            if n > 0 { offset += Int(n); sent += Int(n); continue }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN || errno == ENOBUFS { var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0); _ = poll(&p, 1, 10); continue }
            // The first message's source address is gone from this host: send it from the kernel's choice.
            if n < 0, batch.headers[offset].msg_hdr.msg_controllen > 0 { batch.setSource(offset, nil); continue }
            offset += 1   // the first message failed: drop it and go on with the rest
        }
        return sent
    }

    public func waitReadable(timeoutMilliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, timeoutMilliseconds) > 0
    }
}
