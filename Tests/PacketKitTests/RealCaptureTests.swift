import Foundation
import SixgateTestSupport
import Testing
@testable import PacketKit

/// Captures produced by real tools (the kernel's ping replies and NDP, ping, ndisc6, rdisc6),
/// parsed by PacketKit.
@Suite("Captures from real tools")
struct RealCaptureTests {
    /// What a capture of `scripts/capture-real-tools.sh` (or the live test) must contain.
    static func checkCapture(_ path: String, left: IPv6Address, right: IPv6Address, left4: IPv4Address, right4: IPv4Address) throws {
        let reader = try PcapReader(path: path)
        #expect(reader.linkType == .ethernet)
        let records = try reader.records()
        var echoRequests = Set<UInt16>(), echoReplies = Set<UInt16>(), echo4 = Set<UInt16>(), echo4Replies = Set<UInt16>()
        var solicitations = 0, advertisements = 0, routerSolicitations = 0
        for r in records {
            try r.data.withUnsafeBytes { (frame: UnsafeRawBufferPointer) throws in
                let e = try EthernetFrame(frame)
                switch e.etherType {
                case .ipv6:
                    let p = try IPv6Packet(e.payload)
                    guard p.upperLayerProtocol == .icmpv6 else { return }
                    let m = try ICMPv6Message(p.upperLayer)
                    #expect(m.isChecksumValid(source: p.source, destination: p.destination), "checksum of \(PacketSummary.describeIP(e.payload))")
                    switch m.type {
                    case .echoRequest where p.source == left && p.destination == right: echoRequests.insert(m.echo!.sequence)
                    case .echoReply where p.source == right && p.destination == left: echoReplies.insert(m.echo!.sequence)
                    case .neighborSolicitation:
                        #expect(try NDPValidation.validate(p) == .neighborSolicitation)
                        let ns = try NeighborSolicitation(m)
                        if ns.target == right {
                            solicitations += 1
                            #expect(p.hopLimit == 255)
                            // A solicitation sent to the solicited-node group carries the sender's MAC (RFC 4861 §7.2.2).
                            if p.destination.isSolicitedNodeMulticast {
                                #expect(p.destination == right.solicitedNodeMulticast)
                                #expect(ns.options.first(.sourceLinkLayerAddress)?.linkLayerAddress == e.source)
                            }
                        }
                    case .neighborAdvertisement:
                        #expect(try NDPValidation.validate(p) == .neighborAdvertisement)
                        let na = try NeighborAdvertisement(m)
                        if na.target == right && p.source == right {
                            advertisements += 1
                            #expect(na.flags.contains(.solicited) == !p.destination.isMulticast)
                            if let tlla = na.options.first(.targetLinkLayerAddress) { #expect(tlla.linkLayerAddress == e.source) }
                        }
                    case .routerSolicitation:
                        #expect(try NDPValidation.validate(p) == .routerSolicitation)
                        #expect(p.destination == .allRouters)
                        routerSolicitations += 1
                    default: break
                    }
                case .ipv4:
                    let p = try IPv4Packet(e.payload)
                    #expect(p.isHeaderChecksumValid)
                    guard p.protocolNumber == .icmp else { return }
                    let m = try ICMPv4Message(p.payload)
                    #expect(m.isChecksumValid)
                    if m.type == ICMPv4Message.echoRequest && p.source == left4 && p.destination == right4 { echo4.insert(m.sequence) }
                    if m.type == ICMPv4Message.echoReply && p.source == right4 && p.destination == left4 { echo4Replies.insert(m.sequence) }
                default: break
                }
            }
        }
        #expect(echoRequests == [1, 2, 3], "ping -6 requests seen: \(echoRequests)")
        #expect(echoReplies == [1, 2, 3], "ping -6 replies seen: \(echoReplies)")
        #expect(echo4 == [1, 2, 3] && echo4Replies == [1, 2, 3], "ping requests \(echo4), replies \(echo4Replies)")
        #expect(solicitations >= 1, "no neighbor solicitation for \(right)")
        #expect(advertisements >= 1, "no neighbor advertisement from \(right)")
        #expect(routerSolicitations >= 1, "no router solicitation from rdisc6")
    }

    /// A capture made by `scripts/capture-real-tools.sh` on Debian 12 and committed (see Fixtures/README.md).
    @Test func committedCaptureOfRealToolsParses() throws {
        guard let url = Bundle.module.url(forResource: "real-tools", withExtension: "pcap", subdirectory: "Fixtures") else {
            Issue.record("Fixtures/real-tools.pcap missing")
            return
        }
        try Self.checkCapture(url.path, left: try IPv6Address.parse("2001:db8:5::1"), right: try IPv6Address.parse("2001:db8:5::2"),
                              left4: IPv4Address(192, 0, 2, 1), right4: IPv4Address(192, 0, 2, 2))
    }

    /// The same, captured now in namespaces this test makes (root only).
    @Test(.enabled(if: isRoot, "needs root for network namespaces"))
    func liveCaptureOfRealToolsParses() throws {
        let path = NSTemporaryDirectory() + "sixgate-live-\(uniqueSuffix()).pcap"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["bash", Self.scriptPath, path], timeout: 60)
        #expect(r.succeeded, "capture script failed: \(r.stdout)\n\(r.stderr)")
        guard r.succeeded else { return }
        try Self.checkCapture(path, left: try IPv6Address.parse("2001:db8:5::1"), right: try IPv6Address.parse("2001:db8:5::2"),
                              left4: IPv4Address(192, 0, 2, 1), right4: IPv4Address(192, 0, 2, 2))
    }

    static var scriptPath: String {
        // Tests/PacketKitTests/RealCaptureTests.swift -> scripts/capture-real-tools.sh
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/capture-real-tools.sh").path
    }
}
