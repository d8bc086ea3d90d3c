// One-line, tcpdump-like descriptions of packets, for tools and logs. Not a hot path.

/// An IP packet of either version.
public enum IPPacket {
    case v4(IPv4Packet)
    case v6(IPv6Packet)

    /// Dispatches on the version nibble.
    public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 1 else { throw PacketError(.ipv4, .truncated, at: 0) }
        switch buffer[0] >> 4 {
        case 4: self = .v4(try IPv4Packet(buffer))
        case 6: self = .v6(try IPv6Packet(buffer))
        default: throw PacketError(.ipv4, .badVersion, at: 0)
        }
    }
}

/// Builds a one-line summary in the spirit of `tcpdump -n`.
public enum PacketSummary {
    /// Describes a frame of the given link type.
    public static func describe(_ frame: UnsafeRawBufferPointer, linkType: PcapLinkType) -> String {
        do {
            switch linkType {
            case .ethernet:
                let e = try EthernetFrame(frame)
                let prefix = e.vlan.map { "vlan \($0) " } ?? ""
                switch e.etherType {
                case .ipv4, .ipv6: return prefix + describeIP(e.payload)
                case .arp: return prefix + "ARP \(e.source) > \(e.destination)"
                default: return prefix + "ethertype 0x\(String(e.etherType.rawValue, radix: 16)) \(e.source) > \(e.destination)"
                }
            case .linuxCooked:
                let s = try LinuxCookedFrame(frame)
                return describeIP(s.payload)
            case .raw, .ipv4, .ipv6:
                return describeIP(frame)
            default:
                return "link type \(linkType.rawValue), \(frame.count) bytes"
            }
        } catch {
            return "malformed: \(error)"
        }
    }

    /// Describes an IPv4 or IPv6 packet.
    public static func describeIP(_ bytes: UnsafeRawBufferPointer) -> String {
        do {
            switch try IPPacket(bytes) {
            case .v4(let p):
                let head = "IP \(p.source) > \(p.destination):"
                if p.fragmentOffset != 0 { return "\(head) fragment offset \(Int(p.fragmentOffset) * 8), proto \(p.protocolNumber)" }
                return head + " " + describeUpper(p.protocolNumber, p.payload, p.transportPseudoHeader, v6: nil)
            case .v6(let p):
                var head = "IP6 \(p.source) > \(p.destination):"
                if p.extensionHeaderCount > 0 {
                    head += " [" + p.extensionHeaders.map { $0.type.description }.joined(separator: ",") + "]"
                }
                guard p.hasUpperLayerHeader else { return "\(head) fragment offset \(Int(p.fragment!.offset) * 8)" }
                return head + " " + describeUpper(p.upperLayerProtocol, p.upperLayer,
                                                  p.transportPseudoHeader, v6: p)
            }
        } catch {
            return "malformed: \(error)"
        }
    }

    static func describeUpper(_ proto: IPProtocol, _ b: UnsafeRawBufferPointer, _ pseudo: PseudoHeader, v6: IPv6Packet?) -> String {
        do {
            switch proto {
            case .udp:
                let u = try UDPDatagram(b)
                return "UDP \(u.sourcePort) > \(u.destinationPort), length \(u.payload.count)" + (u.isChecksumValid(pseudo) ? "" : " [bad udp cksum]")
            case .tcp:
                let t = try TCPSegment(b)
                return "TCP \(t.sourcePort) > \(t.destinationPort), Flags [\(t.flags)], seq \(t.sequenceNumber), length \(t.payload.count)"
                    + (t.isChecksumValid(pseudo) ? "" : " [bad tcp cksum]")
            case .icmp:
                let m = try ICMPv4Message(b)
                let name: String
                switch m.type {
                case 8: name = "echo request, id \(m.identifier), seq \(m.sequence)"
                case 0: name = "echo reply, id \(m.identifier), seq \(m.sequence)"
                case 3: name = "destination unreachable, code \(m.code)" + (m.code == 4 ? ", mtu \(m.nextHopMTU)" : "")
                case 11: name = "time exceeded, code \(m.code)"
                default: name = "type \(m.type), code \(m.code)"
                }
                return "ICMP \(name), length \(b.count)" + (m.isChecksumValid ? "" : " [bad icmp cksum]")
            case .icmpv6:
                let m = try ICMPv6Message(b)
                guard case .ipv6(let s, let d) = pseudo else { return "ICMP6 over IPv4?" }
                var text = "ICMP6, \(m.type)"
                switch m.type {
                case .echoRequest, .echoReply:
                    if let e = m.echo { text += ", id \(e.identifier), seq \(e.sequence)" }
                case .packetTooBig:
                    if let mtu = m.mtu { text += ", mtu \(mtu)" }
                case .neighborSolicitation:
                    if let ns = try? NeighborSolicitation(m) { text = "ICMP6, neighbor solicitation, who has \(ns.target)" }
                case .neighborAdvertisement:
                    if let na = try? NeighborAdvertisement(m) {
                        var f = [String]()
                        if na.flags.contains(.router) { f.append("router") }
                        if na.flags.contains(.solicited) { f.append("solicited") }
                        if na.flags.contains(.override) { f.append("override") }
                        text = "ICMP6, neighbor advertisement, tgt is \(na.target)" + (f.isEmpty ? "" : ", Flags [\(f.joined(separator: ", "))]")
                    }
                case .routerAdvertisement:
                    if let ra = try? RouterAdvertisement(m) {
                        text += ", lifetime \(ra.routerLifetime)s"
                        for o in ra.options {
                            if let r = try? NDPOptionRepr(o), case .prefixInformation(let pi) = r { text += ", prefix \(pi.prefix)" }
                        }
                    }
                case .destinationUnreachable, .timeExceeded, .parameterProblem:
                    text += ", " + (icmpv6ErrorCodeName(m.type.rawValue, m.code) ?? "code \(m.code)")
                    if m.type == .parameterProblem, b.count >= 8 {
                        text += ", pointer \(UInt32(b[4]) << 24 | UInt32(b[5]) << 16 | UInt32(b[6]) << 8 | UInt32(b[7]))"
                    }
                    // The invoking packet's addresses (RFC 4443 §2.4: as much of it as fits).
                    if b.count >= 48, b[8] >> 4 == 6 {
                        let src = IPv6Address(rawValue: b.be128(16)), dst = IPv6Address(rawValue: b.be128(32))
                        text += ", for \(src) > \(dst)"
                    }
                default: break
                }
                if let v6, m.type.rawValue >= 133, m.type.rawValue <= 137, v6.hopLimit != 255 { text += " [hlim \(v6.hopLimit)]" }
                return text + ", length \(b.count)" + (m.isChecksumValid(source: s, destination: d) ? "" : " [bad icmp6 cksum]")
            default:
                return "\(proto), length \(b.count)"
            }
        } catch {
            return "malformed: \(error)"
        }
    }
}

/// RFC 4443's names for the codes of ICMPv6 error messages (types 1, 3 and 4).
public func icmpv6ErrorCodeName(_ type: UInt8, _ code: UInt8) -> String? {
    switch (type, code) {
    case (1, 0): return "no route to destination"
    case (1, 1): return "administratively prohibited"
    case (1, 2): return "beyond scope of source address"
    case (1, 3): return "address unreachable"
    case (1, 4): return "port unreachable"
    case (1, 5): return "source address failed ingress/egress policy"
    case (1, 6): return "reject route to destination"
    case (3, 0): return "hop limit exceeded in transit"
    case (3, 1): return "fragment reassembly time exceeded"
    case (4, 0): return "erroneous header field"
    case (4, 1): return "unrecognized next header"
    case (4, 2): return "unrecognized IPv6 option"
    default: return nil
    }
}
