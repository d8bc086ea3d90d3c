// The gateway's side of the lease exchange (docs/lease-protocol.md): requests arrive inside the
// tunnel from a client's key-derived link-local address (TunnelCore hands link-local traffic to
// `handleControl` instead of the kernel) and are answered from AddressPool's leases.
import AddressPool
import Foundation
import PacketKit
import SixgateConfig
import TunnelCore

/// Counters of the lease exchange, shown by `gatewayctl status` next to the device's.
public struct LeaseServiceStatistics: Sendable, Equatable {
    public var requests: UInt64 = 0
    public var replies: UInt64 = 0
    public var refusals: UInt64 = 0
    /// Notices: a client reporting what it left out of its lease (logged, at most one a second per client).
    public var notices: UInt64 = 0
    /// Not a lease request (other link-local traffic), malformed, from an address that is not the
    /// peer's own link-local, or faster than one per `minimumInterval` per client.
    public var dropped: UInt64 = 0
}

extension Gateway {
    /// A client may ask at most this often (a request answered, the next one inside this window is dropped).
    static let minimumLeaseInterval = 0.2

    /// Handles one link-local packet from peer `key` (on the device's receive thread).
    func handleControl(_ packet: UnsafeRawBufferPointer, from key: Bytes32) {
        if handleNotice(packet, from: key) { return }
        guard let reply = leaseReply(packet, from: key) else {
            lock.withLock { leaseStats.dropped += 1 }
            return
        }
        device?.send(packet: reply, to: key)
    }

    /// A client's notice (what it refused of its lease): logged with the client's name, the text
    /// escaped (it comes from the network). True when `packet` was a notice, taken or dropped.
    func handleNotice(_ packet: UnsafeRawBufferPointer, from key: Bytes32) -> Bool {
        guard let ip = try? IPv6Packet(packet), ip.upperLayerProtocol == .udp, ip.fragment == nil,
              let udp = try? UDPDatagram(ip.upperLayer), udp.destinationPort == LeaseMessage.port,
              udp.isChecksumValid(.ipv6(source: ip.source, destination: ip.destination)),
              let notice = try? LeaseMessage(parsing: udp.payload), notice.kind == .notice else { return false }
        let expected = key.withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
        let now = ProcessInfo.processInfo.systemUptime
        lock.lock()
        guard ip.source == expected, now - (lastNotice[key] ?? -1e9) >= 1 else { leaseStats.dropped += 1; lock.unlock(); return true }
        lastNotice[key] = now
        leaseStats.notices += 1
        let name = peersByName.values.first { $0.publicKey == key.base64 }?.name ?? key.base64
        lock.unlock()
        log("client \(name) left out of its lease: \(escapedForLog(notice.message ?? "(no reason given)"))")
        return true
    }

    /// The reply packet (IPv6/UDP) for a valid request, or nil to drop it.
    func leaseReply(_ packet: UnsafeRawBufferPointer, from key: Bytes32) -> [UInt8]? {
        guard let ip = try? IPv6Packet(packet), ip.upperLayerProtocol == .udp, ip.fragment == nil,
              let udp = try? UDPDatagram(ip.upperLayer), udp.destinationPort == LeaseMessage.port,
              udp.isChecksumValid(.ipv6(source: ip.source, destination: ip.destination)),
              let request = try? LeaseMessage(parsing: udp.payload), request.kind == .request else { return nil }
        let expected = key.withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
        guard ip.source == expected else { return nil }
        let now = ProcessInfo.processInfo.systemUptime
        lock.lock()
        if let last = lastLeaseReply[key], now - last < Self.minimumLeaseInterval { lock.unlock(); return nil }
        lastLeaseReply[key] = now
        leaseStats.requests += 1
        let client = peersByName.values.first { $0.publicKey == key.base64 }
        let prefixes = prefixState
        lock.unlock()

        var answer = LeaseMessage(kind: .reply, transaction: request.transaction)
        if let client {
            for l in allocator.leases(of: Self.clatKey(client.name)) {
                if case .v6(let p) = l.prefix, l.pool == Self.v6Pool, p.length == 128 { answer.clatAddress = p.network }
            }
            for l in allocator.leases(of: client.name) {
                switch l.prefix {
                case .v6(let p): answer.ipv6 = AddressAssignment(.v6(p.network), prefixLength: p.length)
                case .v4(let p) where l.pool == Self.v4Pool: answer.ipv4 = AddressAssignment(.v4(p.network), prefixLength: p.length)
                case .v4: break   // a NAT64 address is the translator's
                }
            }
            answer.routes = [.v6(IPv6Prefix(containing: config.poolPrefix.network, length: config.clientPrefixLength))]
            answer.gatewayAddresses = [.v6(config.effectiveGatewayAddress)]
            if answer.ipv4 != nil, let gw = config.effectiveIPv4Gateway {
                answer.routes.append(.v4(IPv4Prefix(containing: gw, length: 0)))
                answer.gatewayAddresses.append(.v4(gw))
            }
            answer.mtu = UInt16(clamping: config.mtu)
            answer.dnsServers = config.dnsServers
            answer.lifetime = config.leaseLifetime
            let now = Self.wallClock()
            // After a renumbering: the lease at its position in each earlier prefix, still valid.
            if config.nptPrefix == nil, let v6 = answer.ipv6, case .v6(let a) = v6.address {
                let p = IPv6Prefix(containing: a, length: v6.prefixLength)
                for r in prefixes.retiring where r.validUntil > now {
                    guard let earlier = r.ipv6Prefix, let old = PrefixState.position(p, of: config.ipv6Prefix, in: earlier) else { continue }
                    answer.deprecated.append(DeprecatedAssignment(old.network, prefixLength: old.length, validLifetime: UInt32(clamping: r.validUntil - now)))
                }
            }
            // A prefix with a valid lifetime: the client asks again before it ends.
            if let until = prefixes.validUntil, until > now, let life = answer.lifetime {
                answer.lifetime = max(30, min(life, UInt32(clamping: until - now)))
            }
            answer.nat64Prefix = config.nat64?.prefix
        }
        if answer.ipv6 == nil && answer.ipv4 == nil {
            answer = LeaseMessage(kind: .refusal, transaction: request.transaction)
            answer.message = client == nil ? "this key is not enrolled on the gateway" : "no addresses are allocated to \(client!.name)"
        }
        lock.withLock {
            if answer.kind == .reply { leaseStats.replies += 1 } else { leaseStats.refusals += 1 }
            if answer.kind == .reply, let client { leaseFetchedAt[client.name] = Self.wallClock() }
        }
        guard let payload = try? answer.encode(),
              let bytes = try? PacketRepr.ipv6(source: ip.destination, destination: ip.source, hopLimit: 255,
                                               .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: udp.sourcePort), payload: payload)).emit()
        else { return nil }
        return bytes
    }
}
