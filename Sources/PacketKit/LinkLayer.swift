// Link-layer framing seen in captures: Ethernet II with 802.1Q tags, and Linux "cooked" (SLL).

/// An EtherType (IEEE 802 numbers). Open set.
public struct EtherType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let ipv4 = EtherType(rawValue: 0x0800)
    public static let arp = EtherType(rawValue: 0x0806)
    public static let vlan = EtherType(rawValue: 0x8100)
    public static let qinq = EtherType(rawValue: 0x88a8)
    public static let ipv6 = EtherType(rawValue: 0x86dd)
}

/// A validated Ethernet II frame (without FCS); 802.1Q/802.1ad tags are skipped.
public struct EthernetFrame {
    public let bytes: UnsafeRawBufferPointer
    /// The EtherType after any VLAN tags.
    public let etherType: EtherType
    /// Where the payload starts (14, or 18/22 with tags).
    public let payloadOffset: Int
    /// The innermost VLAN id, if tagged.
    public let vlan: UInt16?

    public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 14 else { throw PacketError(.ethernet, .truncated, at: buffer.count) }
        var off = 12
        var type = EtherType(rawValue: buffer.be16(12))
        var tag: UInt16? = nil
        var tags = 0
        while type == .vlan || type == .qinq {
            guard off + 6 <= buffer.count, tags < 2 else { throw PacketError(.ethernet, .truncated, at: off) }
            tag = buffer.be16(off + 2) & 0x0fff
            type = EtherType(rawValue: buffer.be16(off + 4))
            off += 4
            tags += 1
        }
        bytes = buffer
        etherType = type
        payloadOffset = off + 2
        vlan = tag
    }
    public var destination: MACAddress { MACAddress(bytes: bytes.slice(0, 6)) }
    public var source: MACAddress { MACAddress(bytes: bytes.slice(6, 12)) }
    public var payload: UnsafeRawBufferPointer { bytes.slice(payloadOffset, bytes.count) }
}

/// A Linux cooked-capture v1 header (DLT_LINUX_SLL, 16 bytes), as written by `tcpdump -i any`.
public struct LinuxCookedFrame {
    public let bytes: UnsafeRawBufferPointer
    public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 16 else { throw PacketError(.linuxCooked, .truncated, at: buffer.count) }
        bytes = buffer
    }
    /// 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us.
    public var packetType: UInt16 { bytes.be16(0) }
    public var etherType: EtherType { EtherType(rawValue: bytes.be16(14)) }
    public var payload: UnsafeRawBufferPointer { bytes.slice(16, bytes.count) }
}
