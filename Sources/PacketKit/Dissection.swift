// Every layer and field of a packet, named as tshark names them (`ip.ttl`, `ipv6.hlim`,
// `udp.checksum.status`...), so a capture can be held against `tshark -T fields` line by line.
// The packets inside ICMP errors are dissected too, as further layers. Not a hot path.

/// One field: tshark's name and the value as `tshark -T fields` prints it (decimal numbers,
/// `0x`-prefixed hexadecimal for identifiers and checksums, 1/0 for flags, addresses as text).
public struct DissectedField: Sendable, Equatable, Codable {
    public let name: String
    public let value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// One layer (`eth`, `sll`, `ip`, `ipv6`, `ipv6.fraghdr`, `icmp`, `icmpv6`, `udp`, `tcp`, `data`).
/// `inner` marks the layers of the packet an ICMP error carries; `error` says why dissection
/// stopped in this layer (a truncated or malformed header).
public struct DissectedLayer: Sendable, Equatable, Codable {
    public let name: String
    public var fields: [DissectedField]
    public var inner: Bool
    public var error: String?
    public init(_ name: String, inner: Bool, fields: [DissectedField] = [], error: String? = nil) {
        self.name = name; self.fields = fields; self.inner = inner; self.error = error
    }
    /// The value of field `name` in this layer.
    public subscript(_ name: String) -> String? { fields.first { $0.name == name }?.value }
}

/// Dissects frames of the link types PacketKit reads.
///
/// ```swift
/// for layer in PacketDissector.dissect(frame, linkType: .ethernet) {
///     print(layer.name, layer.fields.map { "\($0.name)=\($0.value)" })
/// }
/// ```
public enum PacketDissector {
    /// Checksum states, named as tshark's `*.checksum.status` numbers: 0 bad, 1 good, 2 not checked
    /// (a packet cut short), 3 not present (UDP over IPv4 with 0).
    public static let bad = "0", good = "1", unverified = "2", notPresent = "3"

    public static func dissect(_ frame: UnsafeRawBufferPointer, linkType: PcapLinkType) -> [DissectedLayer] {
        var layers: [DissectedLayer] = []
        switch linkType {
        case .ethernet:
            do {
                let e = try EthernetFrame(frame)
                var l = DissectedLayer("eth", inner: false, fields: [.init("eth.dst", "\(e.destination)"), .init("eth.src", "\(e.source)")])
                if let v = e.vlan { l.fields.append(.init("vlan.id", "\(v)")) }
                l.fields.append(.init("eth.type", hex(e.etherType.rawValue, 4)))
                layers.append(l)
                if e.etherType == .ipv4 || e.etherType == .ipv6 { ip(e.payload, into: &layers, inner: false) }
            } catch { layers.append(DissectedLayer("eth", inner: false, error: "\(error)")) }
        case .linuxCooked:
            do {
                let s = try LinuxCookedFrame(frame)
                layers.append(DissectedLayer("sll", inner: false))
                ip(s.payload, into: &layers, inner: false)
            } catch { layers.append(DissectedLayer("sll", inner: false, error: "\(error)")) }
        case .raw, .ipv4, .ipv6:
            ip(frame, into: &layers, inner: false)
        default:
            layers.append(DissectedLayer("frame", inner: false, error: "link type \(linkType.rawValue) is not one PacketKit reads"))
        }
        return layers
    }

    /// An IP packet (either version) and what it carries.
    static func ip(_ b: UnsafeRawBufferPointer, into layers: inout [DissectedLayer], inner: Bool) {
        guard let first = b.first else { layers.append(DissectedLayer("ip", inner: inner, error: "empty")); return }
        if first >> 4 == 4 { ipv4(b, into: &layers, inner: inner) } else if first >> 4 == 6 { ipv6(b, into: &layers, inner: inner) } else {
            layers.append(DissectedLayer("ip", inner: inner, error: "version \(first >> 4)"))
        }
    }

    static func ipv4(_ b: UnsafeRawBufferPointer, into layers: inout [DissectedLayer], inner: Bool) {
        // The packet inside an ICMP error is often cut short: its header is read with the length
        // it has, and its checksums are not checked.
        if inner, b.count >= 20, b[0] >> 4 == 4, Int(b.be16(2)) > b.count, Int(b[0] & 0x0f) * 4 <= b.count {
            var copy = Array(b)
            copy[2] = UInt8(b.count >> 8); copy[3] = UInt8(b.count & 0xff)
            let declared = Int(b.be16(2)), headerGood = InternetChecksum.of(b.slice(0, Int(b[0] & 0x0f) * 4)) == 0
            copy.withUnsafeBytes { c in
                if let p = try? IPv4Packet(c) { ipv4(p, declaredLength: declared, headerGood: headerGood, truncated: true, into: &layers, inner: inner) }
            }
            return
        }
        do {
            let p = try IPv4Packet(b)
            ipv4(p, declaredLength: p.totalLength, headerGood: p.isHeaderChecksumValid, truncated: false, into: &layers, inner: inner)
        } catch { layers.append(DissectedLayer("ip", inner: inner, error: "\(error)")) }
    }

    static func ipv4(_ p: IPv4Packet, declaredLength: Int, headerGood: Bool, truncated: Bool, into layers: inout [DissectedLayer], inner: Bool) {
        var l = DissectedLayer("ip", inner: inner)
        l.fields = [
            .init("ip.hdr_len", "\(p.headerLength)"), .init("ip.dsfield", hex(p.tos, 2)),
            .init("ip.len", "\(declaredLength)"), .init("ip.id", hex(p.identification, 4)),
            .init("ip.flags.df", p.dontFragment ? "1" : "0"), .init("ip.flags.mf", p.moreFragments ? "1" : "0"),
            .init("ip.frag_offset", "\(Int(p.fragmentOffset) * 8)"), .init("ip.ttl", "\(p.ttl)"), .init("ip.proto", "\(p.protocolNumber.rawValue)"),
            .init("ip.checksum", hex(p.headerChecksum, 4)), .init("ip.checksum.status", headerGood ? good : bad),
            .init("ip.src", "\(p.source)"),
        ]
        // A source route: tshark's ip.dst is where the packet is finally going, ip.cur_rt the next hop
        // the header names.
        if let final = p.sourceRouteFinalDestination {
            l.fields += [.init("ip.dst", "\(final)"), .init("ip.cur_rt", "\(p.destination)")]
        } else {
            l.fields.append(.init("ip.dst", "\(p.destination)"))
        }
        layers.append(l)
        guard p.fragmentOffset == 0 else { data(p.payload, into: &layers, inner: inner); return }
        // A first fragment holds only part of the datagram: its header is read, its checksum cannot be checked.
        transport(p.protocolNumber, p.payload, p.transportPseudoHeader, truncated: truncated || p.moreFragments, into: &layers, inner: inner)
    }

    static func ipv6(_ b: UnsafeRawBufferPointer, into layers: inout [DissectedLayer], inner: Bool) {
        if inner, b.count >= 40, b[0] >> 4 == 6, 40 + Int(b.be16(4)) > b.count {
            var copy = Array(b)
            copy[4] = UInt8((b.count - 40) >> 8); copy[5] = UInt8((b.count - 40) & 0xff)
            let declared = Int(b.be16(4))
            copy.withUnsafeBytes { c in
                if let p = try? IPv6Packet(c) { ipv6(p, declaredLength: declared, truncated: true, into: &layers, inner: inner) } else {
                    layers.append(DissectedLayer("ipv6", inner: inner, error: "truncated inside its extension headers"))
                }
            }
            return
        }
        do {
            let p = try IPv6Packet(b)
            ipv6(p, declaredLength: p.payloadLength, truncated: false, into: &layers, inner: inner)
        } catch { layers.append(DissectedLayer("ipv6", inner: inner, error: "\(error)")) }
    }

    static func ipv6(_ p: IPv6Packet, declaredLength: Int, truncated: Bool, into layers: inout [DissectedLayer], inner: Bool) {
        layers.append(DissectedLayer("ipv6", inner: inner, fields: [
            .init("ipv6.tclass", hex(UInt32(p.trafficClass), 8)), .init("ipv6.flow", hex(p.flowLabel, 6)),
            .init("ipv6.plen", "\(declaredLength)"), .init("ipv6.nxt", "\(p.nextHeader.rawValue)"), .init("ipv6.hlim", "\(p.hopLimit)"),
            .init("ipv6.src", "\(p.source)"), .init("ipv6.dst", "\(p.destination)"),
        ]))
        for h in p.extensionHeaders {
            var e = DissectedLayer(extensionName(h.type), inner: inner, fields: [.init("ipv6.ext.nxt", "\(h.bytes.first ?? 0)")])
            if h.type == .fragment, h.bytes.count >= 8 {
                let fo = h.bytes.be16(2)
                e.fields += [.init("ipv6.fraghdr.offset", "\(Int(fo >> 3) * 8)"), .init("ipv6.fraghdr.more", fo & 1 == 1 ? "1" : "0"),
                             .init("ipv6.fraghdr.ident", hex(h.bytes.be32(4), 8))]
            } else if h.type == .routing, h.bytes.count >= 4 {
                e.fields += [.init("ipv6.routing.type", "\(h.bytes[2])"), .init("ipv6.routing.segleft", "\(h.bytes[3])")]
            }
            layers.append(e)
        }
        if let home = p.homeAddress { layers[layers.count - 1].fields.append(.init("ipv6.opt.mipv6.home_address", "\(home)")) }
        guard p.hasUpperLayerHeader else { data(p.upperLayer, into: &layers, inner: inner); return }
        transport(p.upperLayerProtocol, p.upperLayer, p.transportPseudoHeader, truncated: truncated || p.fragment?.moreFragments == true, into: &layers, inner: inner)
    }

    static func extensionName(_ t: IPProtocol) -> String {
        switch t {
        case .hopByHop: "ipv6.hopopts"
        case .destinationOptions: "ipv6.dstopts"
        case .routing: "ipv6.routing"
        case .fragment: "ipv6.fraghdr"
        case .ah: "ah"
        default: "ipv6.ext"
        }
    }

    static func transport(_ proto: IPProtocol, _ b: UnsafeRawBufferPointer, _ pseudo: PseudoHeader, truncated: Bool,
                          into layers: inout [DissectedLayer], inner: Bool) {
        switch proto {
        case .udp:
            guard b.count >= 8 else { layers.append(DissectedLayer("udp", inner: inner, error: "truncated")); return }
            let length = Int(b.be16(4)), checksum = b.be16(6)
            var status = unverified
            if checksum == 0, case .ipv4 = pseudo { status = notPresent } else if !truncated, length >= 8, length <= b.count, let u = try? UDPDatagram(b) {
                status = u.isChecksumValid(pseudo) ? good : bad
            }
            layers.append(DissectedLayer("udp", inner: inner, fields: [
                .init("udp.srcport", "\(b.be16(0))"), .init("udp.dstport", "\(b.be16(2))"), .init("udp.length", "\(length)"),
                .init("udp.checksum", hex(checksum, 4)), .init("udp.checksum.status", status),
            ]))
            if length > 8, !truncated { data(b.slice(8, min(b.count, length)), into: &layers, inner: inner) }
        case .tcp:
            guard b.count >= 20 else { layers.append(DissectedLayer("tcp", inner: inner, error: "truncated")); return }
            let hdr = Int(b[12] >> 4) * 4
            var status = unverified
            if !truncated, let t = try? TCPSegment(b) { status = t.isChecksumValid(pseudo) ? good : bad }
            layers.append(DissectedLayer("tcp", inner: inner, fields: [
                .init("tcp.srcport", "\(b.be16(0))"), .init("tcp.dstport", "\(b.be16(2))"), .init("tcp.seq_raw", "\(b.be32(4))"),
                .init("tcp.ack_raw", "\(b.be32(8))"), .init("tcp.hdr_len", "\(hdr)"), .init("tcp.flags", hex(UInt16(b[13]) | UInt16(b[12] & 0x0f) << 8, 4)),
                .init("tcp.window_size_value", "\(b.be16(14))"), .init("tcp.checksum", hex(b.be16(16), 4)), .init("tcp.checksum.status", status),
                .init("tcp.urgent_pointer", "\(b.be16(18))"),
            ] + (truncated || inner ? [] : [.init("tcp.len", "\(max(0, b.count - hdr))")])))
        case .icmp:
            icmpv4(b, truncated: truncated, into: &layers, inner: inner)
        case .icmpv6:
            icmpv6(b, pseudo, truncated: truncated, into: &layers, inner: inner)
        default:
            data(b, into: &layers, inner: inner)
        }
    }

    static func icmpv4(_ b: UnsafeRawBufferPointer, truncated: Bool, into layers: inout [DissectedLayer], inner: Bool) {
        guard b.count >= 8 else { layers.append(DissectedLayer("icmp", inner: inner, error: "truncated")); return }
        let type = b[0], code = b[1]
        var l = DissectedLayer("icmp", inner: inner, fields: [.init("icmp.type", "\(type)"), .init("icmp.code", "\(code)"), .init("icmp.checksum", hex(b.be16(2), 4))])
        l.fields.append(.init("icmp.checksum.status", truncated ? unverified : InternetChecksum.of(b) == 0 ? good : bad))
        switch type {
        case 0, 8, 13, 14: l.fields += [.init("icmp.ident", "\(b.be16(4))"), .init("icmp.seq", "\(b.be16(6))")]
        case 3 where code == 4: l.fields.append(.init("icmp.mtu", "\(b.be16(6))"))
        case 12: l.fields.append(.init("icmp.pointer", "\(b[4])"))
        default: break
        }
        let isError = type == 3 || type == 11 || type == 12
        if isError, b[5] != 0 { l.fields.append(.init("icmp.length", "\(b[5])")) }
        layers.append(l)
        guard isError || type == 4 || type == 5 else { return }
        // RFC 4884: with a length attribute, the original datagram is that long and an extension follows.
        var original = b.slice(8, b.count)
        if isError, b[5] != 0, 8 + Int(b[5]) * 4 <= b.count { original = b.slice(8, 8 + Int(b[5]) * 4) }
        ip(original, into: &layers, inner: true)
        if original.count + 8 < b.count { extensions(b.slice(8 + original.count, b.count), into: &layers, inner: inner) }
    }

    static func icmpv6(_ b: UnsafeRawBufferPointer, _ pseudo: PseudoHeader, truncated: Bool, into layers: inout [DissectedLayer], inner: Bool) {
        guard b.count >= 4 else { layers.append(DissectedLayer("icmpv6", inner: inner, error: "truncated")); return }
        let type = b[0]
        var l = DissectedLayer("icmpv6", inner: inner, fields: [.init("icmpv6.type", "\(type)"), .init("icmpv6.code", "\(b[1])"), .init("icmpv6.checksum", hex(b.be16(2), 4))])
        var status = unverified
        if !truncated, case .ipv6(let s, let d) = pseudo {
            var c = InternetChecksum.pseudoHeader(source: s, destination: d, length: b.count, nextHeader: .icmpv6)
            c.add(b)
            status = c.verifies ? good : bad
        }
        l.fields.append(.init("icmpv6.checksum.status", status))
        if b.count >= 8 {
            switch type {
            case 128, 129: l.fields += [.init("icmpv6.echo.identifier", hex(b.be16(4), 4)), .init("icmpv6.echo.sequence_number", "\(b.be16(6))")]
            case 2: l.fields.append(.init("icmpv6.mtu", "\(b.be32(4))"))
            case 4: l.fields.append(.init("icmpv6.pointer", "\(b.be32(4))"))
            case 1, 3: if b[4] != 0 { l.fields.append(.init("icmpv6.length", "\(b[4])")) }
            case 135, 136, 137:
                if b.count >= 24 { l.fields.append(.init("icmpv6.nd.\(type == 135 ? "ns" : type == 136 ? "na" : "rd").target_address", "\(IPv6Address(rawValue: b.be128(8)))")) }
            default: break
            }
        }
        layers.append(l)
        guard type < 128, b.count > 8 else { return }
        var original = b.slice(8, b.count)
        if (type == 1 || type == 3), b[4] != 0, 8 + Int(b[4]) * 8 <= b.count { original = b.slice(8, 8 + Int(b[4]) * 8) }
        ip(original, into: &layers, inner: true)
        if original.count + 8 < b.count { extensions(b.slice(8 + original.count, b.count), into: &layers, inner: inner) }
    }

    /// An RFC 4884 extension structure: its version and checksum, then each object's class and type.
    static func extensions(_ b: UnsafeRawBufferPointer, into layers: inout [DissectedLayer], inner: Bool) {
        guard b.count >= 4 else { return }
        var l = DissectedLayer("icmp.ext", inner: inner, fields: [.init("icmp.ext.version", "\(b[0] >> 4)"), .init("icmp.ext.checksum", hex(b.be16(2), 4)),
                                                                  .init("icmp.ext.checksum.status", InternetChecksum.of(b) == 0 ? good : bad)])
        var o = 4
        while o + 4 <= b.count {
            let length = Int(b.be16(o))
            l.fields += [.init("icmp.ext.class", "\(b[o + 2])"), .init("icmp.ext.ctype", "\(b[o + 3])")]
            guard length >= 4 else { break }
            o += length
        }
        layers.append(l)
    }

    static func data(_ b: UnsafeRawBufferPointer, into layers: inout [DissectedLayer], inner: Bool) {
        // The data of a packet inside an ICMP error is left out, as tshark leaves it out.
        guard !b.isEmpty, !inner else { return }
        layers.append(DissectedLayer("data", inner: inner, fields: [.init("data.len", "\(b.count)")]))
    }

    static func hex<T: BinaryInteger>(_ v: T, _ digits: Int) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
