@testable import PacketKit

/// Representative packets of every kind PacketKit builds, used by the round-trip, truncation and
/// tcpdump golden tests. Addresses are from the documentation ranges.
enum Samples {
    static let a = try! IPv6Address.parse("2001:db8::4")
    static let b = try! IPv6Address.parse("2001:db8:ffff::1")
    static let ll = try! IPv6Address.parse("fe80::1")
    static let ll2 = try! IPv6Address.parse("fe80::ff:fe00:a01")
    static let mac = try! MACAddress.parse("02:00:00:00:0a:01")
    static let v4a = IPv4Address(192, 0, 2, 10)
    static let v4b = IPv4Address(203, 0, 113, 1)

    static var invoking: [UInt8] {
        try! PacketRepr.ipv6(source: b, destination: a, .udp(UDPRepr(sourcePort: 53, destinationPort: 33434), payload: [1, 2, 3, 4])).emit()
    }

    /// The IPv4 header and first 8 bytes of a too-big TCP segment, as an ICMPv4 error quotes it.
    static var invoking4: [UInt8] {
        let p = try! PacketRepr.ipv4(source: v4a, destination: v4b, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 443, flags: [.ack]),
                                                                    payload: [UInt8](repeating: 0, count: 1460))).emit()
        return Array(p.prefix(28))
    }

    static var named: [(name: String, packet: PacketRepr)] {
        let raOptions: [NDPOptionRepr] = [
            .sourceLinkLayerAddress(mac),
            .mtu(1420),
            .prefixInformation(.init(prefix: try! IPv6Prefix.parse("2001:db8:1::/64"))),
            .rdnss(lifetime: 1800, servers: [try! IPv6Address.parse("2001:db8::53"), try! IPv6Address.parse("2001:db8::54")]),
            .dnssl(lifetime: 1800, domains: ["example.com", "lan.example.org"]),
            .routeInformation(prefix: try! IPv6Prefix.parse("2001:db8:2::/48"), preference: .high, lifetime: 600),
            .routeInformation(prefix: try! IPv6Prefix.parse("::/0"), preference: .low, lifetime: 600),
            .routeInformation(prefix: try! IPv6Prefix.parse("2001:db8:3:4:5::/80"), preference: .medium, lifetime: 60),
            .pref64(lifetime: 600, prefix: try! IPv6Prefix.parse("64:ff9b::/96")),
        ]
        return [
            ("icmp6-echo-request", .ipv6(source: a, destination: b, .icmpv6(.echoRequest(identifier: 0x1234, sequence: 1, data: Array(0..<56))))),
            ("icmp6-echo-reply", .ipv6(source: b, destination: a, .icmpv6(.echoReply(identifier: 0x1234, sequence: 1, data: [0xde, 0xad])))),
            ("icmp6-unreach", .ipv6(source: b, destination: a, .icmpv6(.destinationUnreachable(code: 4, invokingPacket: invoking)))),
            ("icmp6-ptb", .ipv6(source: b, destination: a, .icmpv6(.packetTooBig(mtu: 1280, invokingPacket: invoking)))),
            ("icmp6-time-exceeded", .ipv6(source: b, destination: a, .icmpv6(.timeExceeded(code: 0, invokingPacket: invoking)))),
            ("icmp6-param-problem", .ipv6(source: b, destination: a, .icmpv6(.parameterProblem(code: 1, pointer: 40, invokingPacket: invoking)))),
            ("ndp-rs", .ipv6(source: ll2, destination: .allRouters, hopLimit: 255, .icmpv6(.routerSolicitation(options: [.sourceLinkLayerAddress(mac)])))),
            ("ndp-ra", .ipv6(source: ll, destination: .allNodes, hopLimit: 255,
                             .icmpv6(.routerAdvertisement(RouterAdvertisementRepr(currentHopLimit: 64, otherConfiguration: true, preference: .high,
                                                                                  routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000,
                                                                                  options: raOptions))))),
            ("ndp-ns", .ipv6(source: ll2, destination: a.solicitedNodeMulticast, hopLimit: 255,
                             .icmpv6(.neighborSolicitation(target: a, options: [.sourceLinkLayerAddress(mac)])))),
            ("ndp-ns-dad", .ipv6(source: .unspecified, destination: a.solicitedNodeMulticast, hopLimit: 255,
                                 .icmpv6(.neighborSolicitation(target: a, options: [.nonce([1, 2, 3, 4, 5, 6])])))),
            ("ndp-na", .ipv6(source: a, destination: ll2, hopLimit: 255,
                             .icmpv6(.neighborAdvertisement(flags: [.router, .solicited], target: a, options: [.targetLinkLayerAddress(mac)])))),
            ("ndp-redirect", .ipv6(source: ll, destination: a, hopLimit: 255,
                                   .icmpv6(.redirect(target: ll2, destination: b, options: [.targetLinkLayerAddress(mac), .redirectedHeader(Array(invoking.prefix(48)))])))),
            ("udp6", .ipv6(source: a, destination: b, .udp(UDPRepr(sourcePort: 51820, destinationPort: 51821), payload: Array("hello sixgate".utf8)))),
            ("tcp6-syn", .ipv6(source: a, destination: b, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 80, sequenceNumber: 1000, flags: [.syn],
                                                                     window: 64800, options: [2, 4, 0x05, 0xa0, 1, 3, 3, 7]), payload: []))),
            ("tcp6-data", .ipv6(source: b, destination: a, .tcp(TCPRepr(sourcePort: 80, destinationPort: 40000, sequenceNumber: 7, acknowledgmentNumber: 1001,
                                                                      flags: [.psh, .ack]), payload: Array(repeating: 0x41, count: 100)))),
            ("udp6-ext-headers", .ipv6(source: a, destination: b, extensionHeaders: [
                .hopByHop(options: [5, 2, 0, 0]),  // Router Alert
                .destinationOptions(options: [0x1e, 1, 0xaa]),
                .routing(type: 4, segmentsLeft: 0, data: [0, 0, 0, 0] + b.bytes),
                .fragment(offset: 0, moreFragments: false, identification: 0xabcdef),
                .destinationOptions(options: []),
            ], .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [9, 9, 9]))),
            ("udp6-srh-final-destination", .ipv6(source: a, destination: ll2, extensionHeaders: [
                .routing(type: 4, segmentsLeft: 1, data: [1, 0, 0, 0] + b.bytes + ll2.bytes),
            ], .udp(UDPRepr(sourcePort: 7, destinationPort: 9), payload: [1]))),
            ("icmp4-echo", .ipv4(source: v4a, destination: v4b, identification: 77, .icmpv4(.echoRequest(identifier: 9, sequence: 3), data: Array(0..<32)))),
            ("icmp4-frag-needed", .ipv4(source: v4b, destination: v4a, .icmpv4(.destinationUnreachable(code: 4, nextHopMTU: 1400), data: invoking4))),
            ("udp4", .ipv4(source: v4a, destination: v4b, .udp(UDPRepr(sourcePort: 5353, destinationPort: 53), payload: Array("query".utf8)))),
            ("tcp4", .ipv4(source: v4a, destination: v4b, .tcp(TCPRepr(sourcePort: 1234, destinationPort: 443, sequenceNumber: 42, flags: [.syn, .ack],
                                                                       options: [2, 4, 5, 0xb4]), payload: []))),
            ("ipv4-options", PacketRepr(.ipv4(IPv4Repr(source: v4a, destination: v4b, protocolNumber: .udp, payloadLength: 0,
                                                       options: [0x94, 0x04, 0, 0])), .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [1])).normalized()),
            ("ipv4-fragment", PacketRepr(.ipv4(IPv4Repr(source: v4a, destination: v4b, protocolNumber: .udp, payloadLength: 0, identification: 99,
                                                        dontFragment: false, moreFragments: false, fragmentOffset: 185)),
                                         .other(.udp, Array(repeating: 7, count: 40))).normalized()),
        ]
    }

    static var bytes: [(name: String, bytes: [UInt8])] { named.map { ($0.name, try! $0.packet.emit()) } }
}
