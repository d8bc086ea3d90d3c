// Segmentation offload on a TUN device (virtio_net_hdr; Linux Documentation/networking/segmentation-offloads.rst):
// cutting the kernel's TCP/UDP super-packets into the packets they stand for, and the reverse,
// coalescing a run of TCP segments of one flow into one super-packet the kernel cuts again (or
// delivers whole), as GRO does (net/ipv4/tcp_offload.c tcp_gro_receive for the rules). Both work
// in buffers the caller owns and allocate nothing per packet.
import PacketKit
#if canImport(Glibc)
import Glibc
#endif

/// Why a super-packet from the TUN device was refused (each is counted by the caller, never a crash).
public enum OffloadError: Error, Sendable, Equatable {
    /// Shorter than the headers it claims, or an IP version/protocol its segmentation type cannot carry.
    case malformed
    /// A segmentation type this code does not cut (UDP fragmentation offload, unknown types).
    case unsupported
    /// A segment size of 0, or one that makes more than `SuperPacket.maximumSegments` segments.
    case badSegmentSize
    /// A partial checksum whose position lies outside the packet.
    case badChecksumPosition
}

/// One read from an offload TUN device: a single packet (its partial checksum completed) or a TCP/UDP
/// super-packet, cut on demand into segments that are complete packets with every checksum right.
///
/// ```swift
/// let sp = try SuperPacket(header: VirtioNetHeader(raw), packet: rest)
/// for i in 0..<sp.count { let n = sp.segment(i, into: slot(i)); send(slot(i), n) }
/// ```
public struct SuperPacket {
    public enum Kind: Sendable, Equatable { case single, tcp, udp }
    /// More than this many segments from one read is refused (a 64 KiB super-packet with the smallest
    /// MSS Linux allows, 88 bytes, makes 745).
    public static let maximumSegments = 1024

    public let kind: Kind
    /// How many packets `segment(_:into:)` makes.
    public let count: Int
    /// Payload bytes per segment (the last may be shorter); the whole packet for `.single`.
    public let segmentSize: Int
    /// IP and transport header bytes copied in front of each segment's payload.
    public let headerLength: Int
    let packet: UnsafeMutableRawBufferPointer
    let ipLength: Int
    let isV4: Bool

    /// Reads `packet` (what followed the virtio header) as the header describes it. A single packet
    /// with NEEDS_CSUM has its checksum completed in place.
    public init(header h: VirtioNetHeader, packet: UnsafeMutableRawBufferPointer) throws(OffloadError) {
        self.packet = packet
        let type = h.segmentationType & 0x7f
        guard packet.count >= 1 else { throw .malformed }
        let version = packet[0] >> 4
        isV4 = version == 4
        if type == VirtioNetHeader.Segmentation.none.rawValue {
            if h.flags & VirtioNetHeader.needsChecksum != 0,
               !InternetChecksum.completePartial(packet, start: Int(h.checksumStart), offset: Int(h.checksumOffset)) {
                throw .badChecksumPosition
            }
            kind = .single; count = 1; segmentSize = packet.count; headerLength = 0; ipLength = 0
            return
        }
        let p = UnsafeRawBufferPointer(packet)
        let proto: UInt8
        switch type {
        case VirtioNetHeader.Segmentation.tcp4.rawValue:
            guard version == 4 else { throw .malformed }
            kind = .tcp; proto = 6
        case VirtioNetHeader.Segmentation.tcp6.rawValue:
            guard version == 6 else { throw .malformed }
            kind = .tcp; proto = 6
        case VirtioNetHeader.Segmentation.udpL4.rawValue:
            guard version == 4 || version == 6 else { throw .malformed }
            kind = .udp; proto = 17
        default:
            throw .unsupported
        }
        // The headers are measured here; the header's own hdr_len is only a hint (and may lie).
        var ip = 0
        if version == 4 {
            guard p.count >= 20 else { throw .malformed }
            ip = Int(p[0] & 0x0f) * 4
            guard ip >= 20, p.count >= ip, p[9] == proto, p.be16(6) & 0x3fff == 0 else { throw .malformed }
        } else {
            guard p.count >= 40, p[6] == proto else { throw .malformed }
            ip = 40
        }
        var transport = 8
        if proto == 6 {
            guard p.count >= ip + 20 else { throw .malformed }
            transport = Int(p[ip + 12] >> 4) * 4
            guard transport >= 20 else { throw .malformed }
        }
        guard p.count > ip + transport else { throw .malformed }   // a super-packet without payload
        ipLength = ip
        headerLength = ip + transport
        let size = Int(h.segmentSize)
        let payload = p.count - headerLength
        guard size > 0 else { throw .badSegmentSize }
        let n = (payload + size - 1) / size
        guard n <= Self.maximumSegments else { throw .badSegmentSize }
        segmentSize = size
        count = n
    }

    /// Writes segment `i` (0..<count) as a complete packet at `out`, which has room for
    /// `headerLength + segmentSize` bytes; returns its length.
    @inline(__always)
    public func segment(_ i: Int, into out: UnsafeMutableRawPointer) -> Int {
        let src = UnsafeRawBufferPointer(packet)
        if kind == .single {
            out.copyMemory(from: src.baseAddress!, byteCount: src.count)
            return src.count
        }
        let payload = src.count - headerLength
        let start = i * segmentSize
        let length = min(segmentSize, payload - start)
        let total = headerLength + length
        out.copyMemory(from: src.baseAddress!, byteCount: headerLength)
        (out + headerLength).copyMemory(from: src.baseAddress! + headerLength + start, byteCount: length)
        let o = UnsafeMutableRawBufferPointer(start: out, count: total)
        // IP: length, and for IPv4 the identification (one more per segment, as the kernel's own
        // segmentation does) and the header checksum.
        if isV4 {
            o.put16(UInt16(total), at: 2)
            o.put16(src.be16(4) &+ UInt16(truncatingIfNeeded: i), at: 4)
            o.put16(0, at: 10)
            var c = InternetChecksum()
            c.add(UnsafeRawBufferPointer(start: out, count: ipLength))
            o.put16(c.value, at: 10)
        } else {
            o.put16(UInt16(total - 40), at: 4)
        }
        let t = ipLength
        var c = InternetChecksum()
        let ro = UnsafeRawBufferPointer(o)
        if isV4 {
            c.add(word32: ro.be32(12)); c.add(word32: ro.be32(16))
        } else {
            c.add(UnsafeRawBufferPointer(start: out + 8, count: 32))
        }
        c.add(word32: UInt32(kind == .tcp ? 6 : 17))
        c.add(word32: UInt32(total - t))
        if kind == .tcp {
            o.put32(src.be32(t + 4) &+ UInt32(truncatingIfNeeded: start), at: t + 4)
            var flags = src[t + 13]
            if i != count - 1 { flags &= ~0x09 }   // FIN and PSH only on the last segment
            if i != 0 { flags &= ~0x80 }           // CWR only on the first
            o.put8(flags, at: t + 13)
            o.put16(0, at: t + 16)
            c.add(UnsafeRawBufferPointer(start: out + t, count: total - t))
            o.put16(c.value, at: t + 16)
        } else {
            o.put16(UInt16(total - t), at: t + 4)
            o.put16(0, at: t + 6)
            c.add(UnsafeRawBufferPointer(start: out + t, count: total - t))
            let v = c.value
            o.put16(v == 0 ? 0xffff : v, at: t + 6)
        }
        return total
    }
}

/// Coalesces the TCP segments of each flow that arrive back to back into one super-packet written
/// with a virtio header (GSO TCPv4/TCPv6, partial checksum), so the kernel takes 64 KiB in one write
/// instead of forty: the receive half of TUN offload. Segments are not copied: a flow keeps pointers
/// into the caller's buffers, which must stay unchanged until `flush` (call it before reusing them).
///
/// Rules, as Linux's GRO: same addresses and ports, the next sequence number, same acknowledgement,
/// window, flags (PSH aside) and options, same IP fields (TOS/TTL/DF or traffic class, flow label,
/// hop limit), IPv4 identifications counting up; every segment's checksum verified first; all but the
/// last segment of a run the same size; a segment with PSH or a short one ends the run. Anything
/// else (other protocols, SYN/FIN/RST/URG/CWR, options on IPv4, IPv6 extension headers) is written
/// alone, after whatever its flow had pending, so no flow is reordered.
public final class TCPCoalescer {
    /// What `add` and `flush` hand to their writer: `count` iovecs, the first the virtio header.
    public typealias Writer = (UnsafePointer<iovec>, Int) -> Void

    struct Flow {
        var active = false
        var closed = false
        var isV4 = false
        var first: UnsafeMutableRawPointer? = nil
        var ipLength = 0
        var headerLength = 0
        var totalLength = 0
        var segmentSize = 0
        var count = 0
        var nextSeq: UInt32 = 0
        var push = false
    }

    public let flowLimit: Int
    public let segmentLimit: Int
    let flows: UnsafeMutablePointer<Flow>
    /// Per flow: the virtio header, then up to `segmentLimit` + 1 iovecs.
    let headers: UnsafeMutableRawPointer
    let vectors: UnsafeMutablePointer<iovec>
    let single: UnsafeMutablePointer<iovec>
    let zeroHeader: UnsafeMutableRawPointer
    var victim = 0
    /// Segments merged into a super-packet (not counting each run's first).
    public private(set) var coalesced: UInt64 = 0
    /// Super-packets written (runs of two or more).
    public private(set) var superPackets: UInt64 = 0
    /// Eligible segments whose TCP checksum did not verify (written alone; the kernel drops them).
    public private(set) var badChecksums: UInt64 = 0

    public init(flows: Int = 8, segments: Int = 64) {
        flowLimit = max(1, flows); segmentLimit = max(2, segments)
        self.flows = .allocate(capacity: flowLimit)
        self.flows.initialize(repeating: Flow(), count: flowLimit)
        headers = .allocate(byteCount: flowLimit * 16, alignment: 16)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: flowLimit * 16)
        vectors = .allocate(capacity: flowLimit * (segmentLimit + 1))
        single = .allocate(capacity: 2)
        zeroHeader = .allocate(byteCount: 16, alignment: 16)
        zeroHeader.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
    }

    deinit { flows.deallocate(); headers.deallocate(); vectors.deallocate(); single.deallocate(); zeroHeader.deallocate() }

    /// Takes one complete IP packet (`packet.count` is its IP length). Whatever must be written now
    /// (the packet itself when it cannot be coalesced, and first its flow's pending run) goes to `write`.
    @inline(__always)
    public func add(_ packet: UnsafeMutableRawBufferPointer, write: Writer) {
        let p = UnsafeRawBufferPointer(packet)
        guard p.count >= 40 else { return alone(packet, write) }
        let v4: Bool
        let ip: Int
        switch p[0] >> 4 {
        case 4:
            // No options, TCP, not a fragment.
            guard p[0] == 0x45, p[9] == 6, p.be16(6) & 0x3fff == 0, Int(p.be16(2)) == p.count else { return alone(packet, write) }
            v4 = true; ip = 20
        case 6:
            guard p[6] == 6, Int(p.be16(4)) + 40 == p.count, p.count >= 60 else { return alone(packet, write) }
            v4 = false; ip = 40
        default:
            return alone(packet, write)
        }
        let tcpLength = Int(p[ip + 12] >> 4) * 4
        guard tcpLength >= 20, ip + tcpLength <= p.count else { return alone(packet, write) }
        let header = ip + tcpLength
        let payload = p.count - header
        let flags = p[ip + 13]
        // ACK set; no SYN, RST, URG, FIN or CWR; some payload.
        let eligible = payload > 0 && flags & 0x10 != 0 && flags & 0xa7 == 0
        let slot = find(p, v4: v4, ip: ip)
        if let slot {
            if eligible, append(slot, packet, ip: ip, header: header, payload: payload, flags: flags) { return }
            emit(slot, write)
        }
        guard eligible else { return alone(packet, write) }
        guard Self.checksumVerifies(p, v4: v4, ip: ip) else { badChecksums += 1; return alone(packet, write) }
        let s = slot ?? freeSlot(write)
        flows[s] = Flow(active: true, closed: flags & 0x08 != 0, isV4: v4, first: packet.baseAddress, ipLength: ip,
                        headerLength: header, totalLength: p.count, segmentSize: payload, count: 1,
                        nextSeq: p.be32(ip + 4) &+ UInt32(payload), push: flags & 0x08 != 0)
        vectors[s * (segmentLimit + 1) + 1] = iovec(iov_base: packet.baseAddress, iov_len: p.count)
    }

    /// Writes every pending run.
    public func flush(_ write: Writer) {
        for s in 0..<flowLimit where flows[s].active { emit(s, write) }
    }

    @inline(__always) func alone(_ packet: UnsafeMutableRawBufferPointer, _ write: Writer) {
        single[0] = iovec(iov_base: zeroHeader, iov_len: VirtioNetHeader.size)
        single[1] = iovec(iov_base: packet.baseAddress, iov_len: packet.count)
        write(single, 2)
    }

    /// The slot of `p`'s flow (addresses and ports equal), if one is pending.
    @inline(__always) func find(_ p: UnsafeRawBufferPointer, v4: Bool, ip: Int) -> Int? {
        let base = p.baseAddress!
        for s in 0..<flowLimit {
            let f = flows[s]
            guard f.active, f.isV4 == v4, let first = f.first else { continue }
            if v4 {
                guard first.loadUnaligned(fromByteOffset: 12, as: UInt64.self) == base.loadUnaligned(fromByteOffset: 12, as: UInt64.self) else { continue }
            } else {
                guard first.loadUnaligned(fromByteOffset: 8, as: UInt128.self) == base.loadUnaligned(fromByteOffset: 8, as: UInt128.self),
                      first.loadUnaligned(fromByteOffset: 24, as: UInt128.self) == base.loadUnaligned(fromByteOffset: 24, as: UInt128.self) else { continue }
            }
            if first.loadUnaligned(fromByteOffset: ip, as: UInt32.self) == base.loadUnaligned(fromByteOffset: ip, as: UInt32.self) { return s }
        }
        return nil
    }

    /// A free slot, or the next one in turn written out to make room.
    @inline(__always) func freeSlot(_ write: Writer) -> Int {
        for s in 0..<flowLimit where !flows[s].active { return s }
        let s = victim
        victim = (victim + 1) % flowLimit
        emit(s, write)
        return s
    }

    /// Appends `packet` to the run in `slot` when the rules allow; false leaves the run as it was.
    @inline(__always)
    func append(_ s: Int, _ packet: UnsafeMutableRawBufferPointer, ip: Int, header: Int, payload: Int, flags: UInt8) -> Bool {
        let f = flows[s]
        guard !f.closed, f.count < segmentLimit, header == f.headerLength, payload <= f.segmentSize,
              f.totalLength + payload <= 65535, let first = f.first else { return false }
        let p = UnsafeRawBufferPointer(packet)
        let q = UnsafeRawBufferPointer(start: first, count: f.headerLength)
        guard p.be32(ip + 4) == f.nextSeq, p.be32(ip + 8) == q.be32(ip + 8) else { return false }   // sequence, acknowledgement
        // Data offset, flags other than PSH, window; then the options, byte for byte.
        guard p.be32(ip + 12) & 0xfff7_ffff == q.be32(ip + 12) & 0xfff7_ffff,
              memcmp(p.baseAddress! + ip + 20, first + ip + 20, header - ip - 20) == 0 else { return false }
        if f.isV4 {
            // TOS, DF, TTL equal; identification one more per segment.
            guard p[1] == q[1], p[6] & 0x40 == q[6] & 0x40, p[8] == q[8],
                  p.be16(4) == q.be16(4) &+ UInt16(truncatingIfNeeded: f.count) else { return false }
        } else {
            // Version, traffic class and flow label; hop limit.
            guard p.be32(0) == q.be32(0), p[7] == q[7] else { return false }
        }
        guard Self.checksumVerifies(p, v4: f.isV4, ip: ip) else { return false }   // counted by `add`
        let index = s * (segmentLimit + 1) + 1 + f.count
        vectors[index] = iovec(iov_base: packet.baseAddress! + header, iov_len: payload)
        flows[s].count += 1
        flows[s].totalLength += payload
        flows[s].nextSeq = f.nextSeq &+ UInt32(payload)
        if flags & 0x08 != 0 || payload < f.segmentSize { flows[s].closed = true }
        if flags & 0x08 != 0 { flows[s].push = true }
        coalesced += 1
        return true
    }

    /// Writes the run in `slot` (one packet alone, several as a super-packet) and frees the slot.
    @inline(__always) func emit(_ s: Int, _ write: Writer) {
        let f = flows[s]
        flows[s].active = false
        guard let first = f.first else { return }
        let v = vectors + s * (segmentLimit + 1)
        if f.count == 1 {
            v[0] = iovec(iov_base: zeroHeader, iov_len: VirtioNetHeader.size)
            write(v, 2)
            return
        }
        let o = UnsafeMutableRawBufferPointer(start: first, count: f.headerLength)
        let ip = f.ipLength
        var c = InternetChecksum()
        if f.isV4 {
            o.put16(UInt16(f.totalLength), at: 2)
            o.put16(0, at: 10)
            var h = InternetChecksum()
            h.add(UnsafeRawBufferPointer(start: first, count: 20))
            o.put16(h.value, at: 10)
            c.add(word32: UnsafeRawBufferPointer(o).be32(12)); c.add(word32: UnsafeRawBufferPointer(o).be32(16))
        } else {
            o.put16(UInt16(f.totalLength - 40), at: 4)
            c.add(UnsafeRawBufferPointer(start: first + 8, count: 32))
        }
        if f.push { o.put8(o[ip + 13] | 0x08, at: ip + 13) }
        // The partial checksum: the pseudo-header's folded sum, which the kernel (or the NIC) completes.
        c.add(word32: 6)
        c.add(word32: UInt32(f.totalLength - ip))
        o.put16(c.foldedSum, at: ip + 16)
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.segmentationType = (f.isV4 ? VirtioNetHeader.Segmentation.tcp4 : .tcp6).rawValue
        h.headerLength = UInt16(f.headerLength)
        h.segmentSize = UInt16(f.segmentSize)
        h.checksumStart = UInt16(ip)
        h.checksumOffset = 16
        let hb = headers + s * 16
        h.write(to: UnsafeMutableRawBufferPointer(start: hb, count: VirtioNetHeader.size))
        // The first vector still spans the first packet whole (headers and its payload).
        v[0] = iovec(iov_base: hb, iov_len: VirtioNetHeader.size)
        superPackets += 1
        write(v, f.count + 1)
    }

    /// Whether a TCP segment's checksum verifies (pseudo-header included).
    @inline(__always) static func checksumVerifies(_ p: UnsafeRawBufferPointer, v4: Bool, ip: Int) -> Bool {
        var c = InternetChecksum()
        if v4 { c.add(word32: p.be32(12)); c.add(word32: p.be32(16)) } else { c.add(p.slice(8, 40)) }
        c.add(word32: 6)
        c.add(word32: UInt32(p.count - ip))
        c.add(p.slice(ip, p.count))
        return c.verifies
    }
}
