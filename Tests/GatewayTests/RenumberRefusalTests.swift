import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import TunnelGateway

/// Issue 24's bad input, on a gateway that is not started (nothing in the kernel): each refusal
/// names the reason and keeps the previous prefix, its leases and STATE/prefix as they were.
struct RenumberRefusalTests {
    func gateway(prefix: String) throws -> (Gateway, String) {
        let dir = NSTemporaryDirectory() + "sg-renumber-\(uniqueSuffix())"
        var c = GatewayConfiguration()
        c.stateDirectory = dir
        c.ipv6Prefix = IPv6Prefix(prefix)!
        c.prefixSource = .external
        let g = try Gateway(config: c)
        return (g, dir)
    }

    @Test func badPrefixesAndLifetimesAreRefusedWithThePreviousStateKept() throws {
        let (g, dir) = try gateway(prefix: "2a01:4f8:1::/64")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try g.allocator.allocate(client: "alice", in: GatewayPlanner.v6Pool)
        _ = try g.renumber(to: IPv6Prefix("2a01:4f8:2::/64")!, preferred: 1800, valid: 3600)
        let state = try String(contentsOfFile: dir + "/prefix", encoding: .utf8)
        for (prefix, preferred, valid, why) in [
            ("2001:db8:7::/64", UInt32?.none, UInt32?.none, "is in the documentation range 2001:db8::/32, and the configured prefix 2a01:4f8:1::/64 is not"),
            ("3fff:1::/64", nil, nil, "documentation range 3fff::/20"),
            ("::ffff:0:0/96", nil, nil, "the IPv4-mapped range"),
            ("2a01:4f8:3::/64", nil, 0, "a valid lifetime of 0 withdraws a prefix"),
            ("2a01:4f8:3::/64", 600, 300, "preferred lifetime 600 s is longer than the valid lifetime 300 s"),
            ("2a01:4f8:3::/126", nil, nil, "leaves no room for clients"),
        ] {
            do {
                _ = try g.renumber(to: IPv6Prefix(prefix)!, preferred: preferred, valid: valid)
                Issue.record("\(prefix) accepted")
            } catch {
                #expect("\(error)".contains(why) && "\(error)".contains("keeping 2a01:4f8:2::/64"), "\(prefix): \(error)")
            }
            #expect(g.config.ipv6Prefix == IPv6Prefix("2a01:4f8:2::/64")!)
            #expect(g.allocator.leases(of: "alice").first?.prefix == IPPrefix("2a01:4f8:2::4/128")!)
            #expect(try String(contentsOfFile: dir + "/prefix", encoding: .utf8) == state)
        }
    }

    /// NPTv6 maps prefixes of one length: a delegation of another length is refused, running or
    /// not (without a gatewayd, nothing is written for its next start).
    @Test func anNPTv6GatewayRefusesADelegationOfAnotherLength() throws {
        let dir = NSTemporaryDirectory() + "sg-renumber-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = GatewayConfiguration()
        c.stateDirectory = dir
        c.ipv6Prefix = IPv6Prefix("2a01:4f8:100::/56")!
        c.nptPrefix = IPv6Prefix("fd00:6296::/56")!
        c.prefixSource = .dhcpv6PD
        #expect(c.prefixRefusal(IPv6Prefix("2a01:4f8:200::/48")!, preferred: nil, valid: nil)?.contains("NPTv6 maps fd00:6296::/56 to a prefix of the same length, not a /48") == true)
        #expect(c.prefixRefusal(IPv6Prefix("2a01:4f8:200::/56")!, preferred: 1800, valid: 3600) == nil)
        do {
            _ = try GatewayAdmin.setPrefix(c, IPv6Prefix("2a01:4f8:200::/48")!)
            Issue.record("written")
        } catch {
            #expect("\(error)".contains("not a /48; nothing written"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: c.prefixStatePath))
        let g = try Gateway(config: c)
        #expect(throws: GatewayError.self) { try g.renumber(to: IPv6Prefix("2a01:4f8:200::/48")!) }
        #expect(g.config.ipv6Prefix == IPv6Prefix("2a01:4f8:100::/56")!)
    }

    @Test func aDelegatedPrefixShorterThanTheClientsNeedIsRefused() throws {
        let dir = NSTemporaryDirectory() + "sg-renumber-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = GatewayConfiguration()
        c.stateDirectory = dir
        c.ipv6Prefix = IPv6Prefix("2a01:4f8:100::/56")!
        c.prefixSource = .external
        c.allocation = .prefixes
        c.delegatedLength = 60
        let g = try Gateway(config: c)
        do {
            _ = try g.renumber(to: IPv6Prefix("2a01:4f8:200::/62")!)
            Issue.record("a /62 accepted for /60 clients")
        } catch {
            #expect("\(error)".contains("shorter delegated prefixes (/60) than the clients need cannot come out of a /62"), "\(error)")
        }
        #expect(g.config.ipv6Prefix == IPv6Prefix("2a01:4f8:100::/56")!)
    }
}

/// Issue 25's seam: gatewayd's clients through `ClientStore`, here one in memory instead of the
/// clients/ folder; enrolment and removal go to it and nowhere else.
struct ClientStoreSeamTests {
    final class MemoryClients: ClientStore, @unchecked Sendable {
        var records: [String: ClientRecord] = [:]
        let lock = NSLock()
        func all() throws(GatewayError) -> [ClientRecord] { lock.withLock { records.values.sorted { $0.name < $1.name } } }
        func read(_ name: String) throws(GatewayError) -> ClientRecord {
            guard let r = lock.withLock({ records[name] }) else { throw .unknownClient(name) }
            return r
        }
        func write(_ c: ClientRecord) throws(GatewayError) { lock.withLock { records[c.name] = c } }
        func remove(_ name: String) throws(GatewayError) { _ = lock.withLock { records.removeValue(forKey: name) } }
    }

    @Test func enrolmentGoesThroughTheStoreItIsGiven() throws {
        let dir = NSTemporaryDirectory() + "sg-store-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = GatewayConfiguration()
        c.stateDirectory = dir
        let store = MemoryClients()
        let g = try Gateway(config: c, clientStore: store)
        let status = try g.addClient(name: "alice", publicKey: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
        #expect(status.addresses.contains("2001:db8::4/128"), "\(status)")
        #expect(try store.all().map(\.name) == ["alice"])
        #expect(!FileManager.default.fileExists(atPath: c.clientsDirectory + "/alice"), "nothing in the folder")
        #expect(throws: GatewayError.self) { try g.addClient(name: "alice", publicKey: "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=") }
        try g.removeClient(name: "alice")
        #expect(try store.all().isEmpty)
    }
}
