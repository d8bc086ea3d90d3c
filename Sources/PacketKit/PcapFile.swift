// The classic libpcap file format (https://www.tcpdump.org/manpages/pcap-savefile.5.html), in pure
// Swift for tests and tools. Live capture lives in Diagnostics, on libpcap.
#if canImport(Glibc)
import Glibc
#endif

/// A pcap link-layer header type (LINKTYPE_*). Open set.
public struct PcapLinkType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Ethernet II (LINKTYPE_ETHERNET).
    public static let ethernet = PcapLinkType(rawValue: 1)
    /// Raw IPv4/IPv6, version from the first nibble (LINKTYPE_RAW).
    public static let raw = PcapLinkType(rawValue: 101)
    /// Linux cooked v1 (LINKTYPE_LINUX_SLL).
    public static let linuxCooked = PcapLinkType(rawValue: 113)
    /// Raw IPv4 only (LINKTYPE_IPV4).
    public static let ipv4 = PcapLinkType(rawValue: 228)
    /// Raw IPv6 only (LINKTYPE_IPV6).
    public static let ipv6 = PcapLinkType(rawValue: 229)
}

/// One captured packet.
public struct PcapRecord: Sendable {
    /// Seconds since the epoch.
    public var seconds: UInt32
    /// Nanoseconds within the second (microsecond files are scaled up).
    public var nanoseconds: UInt32
    /// Length on the wire (may exceed `data.count` when the capture was cut at the snap length).
    public var originalLength: Int
    public var data: [UInt8]
}

/// Reads a classic pcap file held in memory. Both byte orders, microsecond and nanosecond
/// timestamps. A record whose length runs past the file or past the snap length (or 256 KiB)
/// ends reading with an error instead of a huge allocation.
public struct PcapReader: Sequence {
    public let linkType: PcapLinkType
    public let snapLength: UInt32
    public let nanosecondResolution: Bool
    let swapped: Bool
    let file: [UInt8]

    public static let maximumRecordLength = 262_144

    public init(bytes: [UInt8]) throws(PacketError) {
        guard bytes.count >= 24 else { throw PacketError(.pcap, .truncated, at: bytes.count) }
        let magicLE = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        let sw: Bool
        switch magicLE {
        case 0xa1b2c3d4: sw = false; nanosecondResolution = false
        case 0xa1b23c4d: sw = false; nanosecondResolution = true
        case 0xd4c3b2a1: sw = true; nanosecondResolution = false
        case 0x4d3cb2a1: sw = true; nanosecondResolution = true
        default: throw PacketError(.pcap, .badMagic, at: 0)
        }
        swapped = sw
        file = bytes
        func u32(_ o: Int) -> UInt32 {
            let le = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
            return sw ? le.byteSwapped : le
        }
        snapLength = u32(16)
        linkType = PcapLinkType(rawValue: u32(20) & 0x0fff_ffff)
    }

    /// Reads the whole file at `path`.
    public init(path: String) throws(PcapFileError) {
        let bytes = try PcapFileIO.readAll(path)
        let reader: PcapReader
        do { reader = try PcapReader(bytes: bytes) } catch { throw PcapFileError(path: path, reason: error.description) }
        self = reader
    }

    /// All records; throws at the first malformed one.
    public func records() throws(PacketError) -> [PcapRecord] {
        var it = makeIterator()
        var out = [PcapRecord]()
        while let r = try it.nextRecord() { out.append(r) }
        return out
    }

    public struct Iterator: IteratorProtocol {
        let reader: PcapReader
        var offset = 24
        /// Set when iteration stopped at a malformed record.
        public private(set) var error: PacketError?
        /// Records skipped because their timestamp was out of range (iteration goes on past them).
        public private(set) var skipped: [PacketError] = []

        public mutating func next() -> PcapRecord? {
            while true {
                do { return try nextRecord() } catch where error.reason == .badTimestamp {
                    skipped.append(error)
                } catch { self.error = error; return nil }
            }
        }

        public mutating func nextRecord() throws(PacketError) -> PcapRecord? {
            let f = reader.file
            if offset == f.count { return nil }
            guard offset + 16 <= f.count else { throw PacketError(.pcap, .truncated, at: offset) }
            func u32(_ o: Int) -> UInt32 {
                let le = UInt32(f[o]) | UInt32(f[o + 1]) << 8 | UInt32(f[o + 2]) << 16 | UInt32(f[o + 3]) << 24
                return reader.swapped ? le.byteSwapped : le
            }
            let sec = u32(offset), frac = u32(offset + 4)
            let incl = Int(u32(offset + 8)), orig = Int(u32(offset + 12))
            let limit = Swift.min(PcapReader.maximumRecordLength, Swift.max(Int(reader.snapLength), 65_535))
            guard incl <= limit else { throw PacketError(.pcap, .badLength, at: offset + 8) }
            guard offset + 16 + incl <= f.count else { throw PacketError(.pcap, .truncated, at: offset + 16) }
            let start = offset
            offset += 16 + incl
            // A fraction of a second of a second or more: the record is malformed, but its framing
            // is intact, so the error says so and the next call reads on.
            guard frac < (reader.nanosecondResolution ? 1_000_000_000 : 1_000_000) else { throw PacketError(.pcap, .badTimestamp, at: start + 4) }
            let data = Array(f[(start + 16)..<(start + 16 + incl)])
            return PcapRecord(seconds: sec, nanoseconds: reader.nanosecondResolution ? frac : frac * 1000,
                              originalLength: orig, data: data)
        }
    }

    public func makeIterator() -> Iterator { Iterator(reader: self) }
}

/// Writes a classic pcap file (microsecond timestamps, little-endian) into memory or a file.
public struct PcapWriter {
    public let linkType: PcapLinkType
    public let snapLength: UInt32
    /// The file so far.
    public private(set) var bytes: [UInt8]

    public init(linkType: PcapLinkType = .raw, snapLength: UInt32 = 262_144) {
        self.linkType = linkType
        self.snapLength = snapLength
        bytes = []
        bytes.reserveCapacity(4096)
        append32(0xa1b2c3d4)
        append16(2)
        append16(4)
        append32(0)  // thiszone
        append32(0)  // sigfigs
        append32(snapLength)
        append32(linkType.rawValue)
    }

    mutating func append16(_ v: UInt16) { bytes += [UInt8(v & 0xff), UInt8(v >> 8)] }
    mutating func append32(_ v: UInt32) { bytes += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }

    /// Appends one packet, cut at the snap length.
    public mutating func append(_ packet: UnsafeRawBufferPointer, seconds: UInt32 = 0, microseconds: UInt32 = 0) {
        let incl = min(packet.count, Int(snapLength))
        append32(seconds)
        append32(microseconds)
        append32(UInt32(incl))
        append32(UInt32(packet.count))
        bytes += packet.prefix(incl)
    }

    /// Appends one packet held in an array.
    public mutating func append(_ packet: [UInt8], seconds: UInt32 = 0, microseconds: UInt32 = 0) {
        packet.withUnsafeBytes { append($0, seconds: seconds, microseconds: microseconds) }
    }

    /// Writes the file to `path` (mode 0644), replacing it.
    public func write(to path: String) throws(PcapFileError) { try PcapFileIO.writeAll(path, bytes) }
}

/// A pcap file could not be read or written: names the file and why.
public struct PcapFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

enum PcapFileIO {
    static func readAll(_ path: String) throws(PcapFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw PcapFileError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PcapFileError(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    static func writeAll(_ path: String, _ bytes: [UInt8]) throws(PcapFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw PcapFileError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PcapFileError(path: path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
    }
}
