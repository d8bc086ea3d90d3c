import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateSystem
import SixgateTestSupport
import Testing

/// RFC 4861 §6.1.1 validation of Router Solicitations and the advertisement's contents (the
/// on-the-wire behaviour is checked with radvdump in GatewayTests' router-mode test).
struct RouterAdvertiserTests {
    func rs(options: [NDPOptionRepr] = [], code: UInt8 = 0) throws -> [UInt8] {
        let m = ICMPv6Repr.routerSolicitation(options: options)
        var out = [UInt8](repeating: 0, count: m.length)
        _ = try out.withUnsafeMutableBytes { b throws(PacketError) in try m.emit(into: b, source: .init(rawValue: 0), destination: .init(rawValue: 0)) }
        out[1] = code
        return out
    }

    @Test func solicitationsAreValidatedAsRFC4861Says() throws {
        let host = IPv6Address("fe80::2")!, unspecified = IPv6Address(rawValue: 0)
        let sll = NDPOptionRepr.sourceLinkLayerAddress(MACAddress("02:00:00:00:00:02")!)
        func valid(_ b: [UInt8], _ from: IPv6Address, _ hops: Int32 = 255) -> Bool {
            b.withUnsafeBytes { RouterAdvertiser.isValidSolicitation($0, from: from, hopLimit: hops) }
        }
        #expect(valid(try rs(), host))
        #expect(valid(try rs(options: [sll]), host))
        #expect(valid(try rs(), unspecified), "from :: without a link-layer option is fine")
        #expect(!valid(try rs(options: [sll]), unspecified), "a link-layer option from :: is not")
        #expect(!valid(try rs(), host, 64), "hop limit must be 255")
        #expect(!valid(try rs(code: 1), host), "code must be 0")
        #expect(!valid(Array(try rs().prefix(6)), host), "at least 8 bytes")
        var zeroLength = try rs(options: [sll]); zeroLength[9] = 0
        #expect(!valid(zeroLength, host), "an option of length 0")
    }
}

/// The advertiser on the wire, against rdisc6 (ndisc6's router solicitation tool).
@Suite(.enabled(if: isRoot && which("rdisc6") != nil, "needs root and rdisc6"))
struct RouterAdvertiserNamespaceTests {
    @Test func aSolicitationIsAnsweredAndStoppingSendsLifetimeZero() throws {
        let pair = try NamespacePair(tag: "ra")
        defer { pair.destroy() }
        var c = AdvertisementConfiguration(interface: pair.leftInterface, prefixes: [IPv6Prefix("2001:db8:5::/64")!])
        c.dnsServers = [IPv6Address("2001:db8:5::53")!]
        c.mtu = 1400
        c.maximumInterval = 1800   // after the first advertisement, the next unsolicited one is 16 s away
        c.nat64Prefix = IPv6Prefix("2001:db8:64::/96")!   // PREF64: rdisc6 skips it, the rest must still read
        let advertiser = try RouterAdvertiser(c, namespace: .named(pair.left))
        // RFC 8781: lifetime 3 x MaxRtrAdvInterval (a multiple of 8), and 0 in the final advertisement.
        #expect(advertiser.advertisement().options.contains(.pref64(lifetime: 5400, prefix: IPv6Prefix("2001:db8:64::/96")!)))
        #expect(advertiser.advertisement(final: true).options.contains(.pref64(lifetime: 0, prefix: IPv6Prefix("2001:db8:64::/96")!)))
        advertiser.start()
        defer { advertiser.stop() }
        usleep(500_000)
        #expect(advertiser.statistics.advertisementsSent == 1)
        // rdisc6 sends a solicitation and prints the advertisement that answers it.
        let r = try pair.exec(pair.right, ["rdisc6", "-1", "-r", "1", "-w", "6000", pair.rightInterface], timeout: 15, check: false)
        #expect(r.succeeded, "\(r.stdout)\(r.stderr)")
        let out = r.stdout.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")   // rdisc6 aligns columns
        #expect(out.contains("Prefix : 2001:db8:5::/64"), "\(r.stdout)")
        #expect(out.contains("Recursive DNS server : 2001:db8:5::53"))
        #expect(out.contains("MTU : 1400 bytes (valid)"))
        #expect(out.contains("Router lifetime : 5400 (0x00001518) seconds"))
        #expect(out.contains("On-link : Yes") && out.contains("Autonomous address conf.: Yes"))
        let s = advertiser.statistics
        #expect(s.solicitationsReceived >= 1 && s.solicitationsInvalid == 0, "\(s)")
        #expect(s.advertisementsSent == 2, "one at start, one answering the solicitation: \(s)")
        // Stopping sends MAX_FINAL_RTR_ADVERTISEMENTS (3) with router lifetime 0.
        advertiser.stop()
        #expect(advertiser.advertisement(final: true).routerLifetime == 0)
        #expect(advertiser.statistics.advertisementsSent == 5)
    }

    /// RFC 9096 after a renumbering: the new prefix advertised at once, the old one with preferred
    /// lifetime 0 and the valid lifetime that remains; the update sends no final advertisement
    /// (hosts keep their router). Read back by rdisc6.
    @Test func anUpdateAdvertisesTheOldPrefixDeprecated() throws {
        let pair = try NamespacePair(tag: "ra9096")
        defer { pair.destroy() }
        var c = AdvertisementConfiguration(interface: pair.leftInterface, prefixes: [IPv6Prefix("2001:db8:5::/64")!])
        c.maximumInterval = 1800
        let advertiser = try RouterAdvertiser(c, namespace: .named(pair.left))
        advertiser.start()
        defer { advertiser.stop() }
        usleep(300_000)
        c.prefixes = [IPv6Prefix("2001:db8:6::/64")!]
        c.deprecatedPrefixes = [DeprecatedPrefix(prefix: IPv6Prefix("2001:db8:5::/64")!, validUntil: MonotonicClock.seconds() + 100)]
        advertiser.update(c)
        #expect(eventually(timeout: 5) { advertiser.statistics.advertisementsSent >= 2 }, "an update is advertised at once: \(advertiser.statistics)")
        #expect(advertiser.advertisement().routerLifetime > 0, "no final advertisement")
        let r = try pair.exec(pair.right, ["rdisc6", "-1", "-r", "1", "-w", "6000", pair.rightInterface], timeout: 15, check: false)
        #expect(r.succeeded, "\(r.stdout)\(r.stderr)")
        // rdisc6 prints each prefix, then its flags and lifetimes.
        let out = r.stdout.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        let blocks = out.components(separatedBy: "Prefix : ").dropFirst()
        let new = try #require(blocks.first { $0.hasPrefix("2001:db8:6::/64") }, "\(r.stdout)")
        let old = try #require(blocks.first { $0.hasPrefix("2001:db8:5::/64") }, "\(r.stdout)")
        #expect(new.contains("Pref. time : 14400"), "\(new)")
        #expect(old.contains("Pref. time : 0 (0x00000000)"), "\(old)")
        let valid = old.components(separatedBy: "Valid time : ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        #expect(valid.map { (90...100).contains($0) } == true, "the remaining valid lifetime: \(old)")
        // Once it has ended, the old prefix is no longer advertised.
        c.deprecatedPrefixes = [DeprecatedPrefix(prefix: IPv6Prefix("2001:db8:5::/64")!, validUntil: MonotonicClock.seconds() - 1)]
        advertiser.update(c)
        #expect(!advertiser.advertisement().options.contains { if case .prefixInformation(let p) = $0 { p.prefix == IPv6Prefix("2001:db8:5::/64")! } else { false } })
    }
}
