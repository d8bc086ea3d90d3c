// Capture on libpcap: live capture on an interface (a TUN device gives raw IP, a veth or Ethernet
// link Ethernet frames) with a BPF filter, offline reading of pcap files, and pcap writing that
// tcpdump and Wireshark read. Errors name the interface, file or filter and say why.
import SixgateSystem
import CPcap
import Foundation
import PacketKit

/// Facts about the capture library Diagnostics is built on.
public enum LivePcap {
    /// libpcap's own version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    public static var libraryVersion: String { String(cString: pcap_lib_version()) }
}

extension PcapLinkType {
    /// From libpcap's DLT_ number (what pcap_datalink returns) to the file format's LINKTYPE_:
    /// equal except raw IP (DLT_RAW is 12 on Linux, LINKTYPE_RAW 101).
    init(dlt: Int32) {
        self = dlt == DLT_RAW || dlt == 14 ? .raw : PcapLinkType(rawValue: UInt32(dlt))
    }
    /// The DLT_ number libpcap's writers take.
    var dlt: Int32 { self == .raw ? DLT_RAW : Int32(rawValue) }
}

/// Why a capture could not start, read or write.
public struct CaptureError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What failed: "capture on eth0", "filter \"tcp port 80\"", "pcap file /tmp/x.pcap".
    public var object: String
    public var detail: String
    public init(_ object: String, _ detail: String) {
        self.object = object
        self.detail = detail
    }
    public var description: String { "\(object): \(detail)" }
}

/// One captured packet. `bytes` is valid only inside the callback that receives it.
public struct CapturedPacket {
    public var seconds: Int
    public var microseconds: Int
    /// The packet's length on the wire (`bytes` may be shorter: the snap length).
    public var originalLength: Int
    public var bytes: UnsafeRawBufferPointer
}

/// What the kernel reports about a capture (`pcap_stats`).
public struct CaptureStatistics: Sendable, Equatable {
    /// Packets the filter accepted.
    public var received: UInt32
    /// Dropped because the capture buffer was full (the reader was too slow).
    public var droppedByKernel: UInt32
    /// Dropped by the interface or its driver.
    public var droppedByInterface: UInt32
}

/// A live capture on one interface. Thread-safe `stop()`; `run` on one thread at a time.
public final class LiveCapture: @unchecked Sendable {
    public let interface: String
    public let linkType: PcapLinkType
    public let snapLength: Int
    let handle: OpaquePointer
    private let lock = SystemLock()
    private var stopped = false

    /// Opens `interface` for capture (immediate delivery, not promiscuous unless asked) and applies
    /// `filter` (BPF, as tcpdump takes it). Needs root or CAP_NET_RAW.
    public init(interface: String, filter: String? = nil, snapLength: Int = 262_144, promiscuous: Bool = false,
                bufferSize: Int = 4 << 20) throws(CaptureError) {
        self.interface = interface
        self.snapLength = snapLength
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        let object = "capture on \(interface)"
        guard let h = pcap_create(interface, &errbuf) else { throw CaptureError(object, cText(errbuf)) }
        pcap_set_snaplen(h, Int32(snapLength))
        pcap_set_promisc(h, promiscuous ? 1 : 0)
        pcap_set_immediate_mode(h, 1)
        pcap_set_buffer_size(h, Int32(bufferSize))
        let status = pcap_activate(h)
        if status < 0 {
            let message: String
            switch status {
            case PCAP_ERROR_NO_SUCH_DEVICE: message = "no such interface (ip link show lists the ones in this network namespace)"
            case PCAP_ERROR_PERM_DENIED: message = "permission denied: capturing needs root or CAP_NET_RAW"
            case PCAP_ERROR_IFACE_NOT_UP: message = "the interface is down"
            default: message = String(cString: pcap_geterr(h))
            }
            pcap_close(h)
            throw CaptureError(object, message)
        }
        // From here on deinit closes the handle, also when init throws.
        handle = h
        linkType = PcapLinkType(dlt: pcap_datalink(h))
        if let filter, !filter.isEmpty { try Self.setFilter(h, filter) }
        guard pcap_setnonblock(h, 1, &errbuf) == 0 else { throw CaptureError(object, cText(errbuf)) }
    }

    static func setFilter(_ h: OpaquePointer, _ filter: String) throws(CaptureError) {
        var program = bpf_program()
        guard pcap_compile(h, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError("filter \(filter.debugDescription)", String(cString: pcap_geterr(h)))
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(h, &program) == 0 else {
            throw CaptureError("filter \(filter.debugDescription)", String(cString: pcap_geterr(h)))
        }
    }

    deinit { pcap_close(handle) }

    /// Delivers packets to `body` until `count` packets were delivered, `duration` seconds passed,
    /// `stop()` was called or `body` returned false. Returns the number delivered.
    @discardableResult
    public func run(count: Int? = nil, duration: Double? = nil, _ body: (CapturedPacket) -> Bool) throws(CaptureError) -> Int {
        let deadline = duration.map { Date().timeIntervalSince1970 + $0 }
        let fd = pcap_get_selectable_fd(handle)
        var delivered = 0
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        while true {
            if let count, delivered >= count { return delivered }
            if isStopped { return delivered }
            var waitMillis: Int32 = 100
            if let deadline {
                let left = deadline - Date().timeIntervalSince1970
                if left <= 0 { return delivered }
                waitMillis = Int32(min(100, max(1, left * 1000)))
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, waitMillis)
            // Drain what is there (non-blocking: 0 means "nothing more now").
            while true {
                let r = pcap_next_ex(handle, &header, &data)
                if r == 0 { break }
                if r == PCAP_ERROR_BREAK { return delivered }
                if r < 0 { throw CaptureError("capture on \(interface)", String(cString: pcap_geterr(handle))) }
                guard let h = header?.pointee, let data else { continue }
                let packet = CapturedPacket(seconds: Int(h.ts.tv_sec), microseconds: Int(h.ts.tv_usec), originalLength: Int(h.len),
                                            bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)))
                delivered += 1
                if !body(packet) { return delivered }
                if let count, delivered >= count { return delivered }
            }
        }
    }

    /// Makes `run` return (within 0.1 s); safe from any thread or a signal handler's queue.
    public func stop() {
        lock.lock(); stopped = true; lock.unlock()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    public var statistics: CaptureStatistics? {
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return CaptureStatistics(received: s.ps_recv, droppedByKernel: s.ps_drop, droppedByInterface: s.ps_ifdrop)
    }
}

/// Writes packets to a pcap file through libpcap (`pcap_dump`), the format tcpdump -w writes.
public final class PcapDumpFile {
    public let path: String
    public let linkType: PcapLinkType
    let dead: OpaquePointer
    let dumper: OpaquePointer
    public private(set) var packetCount = 0

    /// Creates (truncates) `path` for packets of `linkType`.
    public init(path: String, linkType: PcapLinkType, snapLength: Int = 262_144) throws(CaptureError) {
        self.path = path
        self.linkType = linkType
        guard let d = pcap_open_dead(linkType.dlt, Int32(snapLength)) else {
            throw CaptureError("pcap file \(path)", "libpcap cannot make a handle for link type \(linkType.rawValue)")
        }
        guard let w = pcap_dump_open(d, path) else {
            let message = String(cString: pcap_geterr(d))
            pcap_close(d)
            throw CaptureError("pcap file \(path)", message)
        }
        dead = d
        dumper = w
    }

    /// Appends one packet with its original timestamp and length.
    public func write(_ packet: CapturedPacket) {
        var h = pcap_pkthdr()
        h.ts.tv_sec = packet.seconds
        h.ts.tv_usec = packet.microseconds
        h.caplen = UInt32(packet.bytes.count)
        h.len = UInt32(packet.originalLength)
        guard let base = packet.bytes.baseAddress else { return }
        pcap_dump(UnsafeMutablePointer<UInt8>(dumper), &h, base.assumingMemoryBound(to: UInt8.self))
        packetCount += 1
    }

    /// Flushes to disk; errors name the file (a full disk must not pass silently).
    public func flush() throws(CaptureError) {
        guard pcap_dump_flush(dumper) == 0 else { throw CaptureError("pcap file \(path)", "write failed: \(String(cString: strerror(errno)))") }
    }

    /// Flushes and closes; call once.
    public func close() throws(CaptureError) {
        let flushed = pcap_dump_flush(dumper) == 0
        let e = errno
        pcap_dump_close(dumper)
        pcap_close(dead)
        closed = true
        guard flushed else { throw CaptureError("pcap file \(path)", "write failed: \(String(cString: strerror(e)))") }
    }

    private var closed = false
    deinit {
        if !closed {
            pcap_dump_close(dumper)
            pcap_close(dead)
        }
    }
}

/// Reads a pcap (or pcapng) file through libpcap, optionally through a BPF filter.
public final class PcapFileCapture {
    public let path: String
    public let linkType: PcapLinkType
    let handle: OpaquePointer

    public init(path: String, filter: String? = nil) throws(CaptureError) {
        self.path = path
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline(path, &errbuf) else { throw CaptureError("pcap file \(path)", cText(errbuf)) }
        handle = h   // deinit closes it, also when init throws below
        linkType = PcapLinkType(dlt: pcap_datalink(h))
        if let filter, !filter.isEmpty { try LiveCapture.setFilter(h, filter) }
    }

    deinit { pcap_close(handle) }

    /// Delivers every packet (that passes the filter) to `body`; returns the count. A truncated
    /// file ends the loop with an error that says how many packets came before.
    @discardableResult
    public func forEach(_ body: (CapturedPacket) -> Void) throws(CaptureError) -> Int {
        var n = 0
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        while true {
            let r = pcap_next_ex(handle, &header, &data)
            if r == PCAP_ERROR_BREAK { return n }
            if r < 0 { throw CaptureError("pcap file \(path)", "after \(n) packets: \(String(cString: pcap_geterr(handle)))") }
            guard r == 1, let h = header?.pointee, let data else { continue }
            body(CapturedPacket(seconds: Int(h.ts.tv_sec), microseconds: Int(h.ts.tv_usec), originalLength: Int(h.len),
                                bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen))))
            n += 1
        }
    }
}

/// The NUL-terminated text in a libpcap error buffer.
func cText(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
