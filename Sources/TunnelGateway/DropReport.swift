// Every drop class reaches the operator (issue 28): gatewayd calls `reportDrops()` every 10 s; what
// the tunnel device and the NAT64 translator dropped since the last call is logged, one line per
// class, with the addresses of the last such packet and what to do about it. Quiet when nothing
// was dropped, so at most one line per class per 10 s however hard a flood hits.
import Foundation
import PacketKit
import Translator
import TunnelCore

extension Gateway {
    /// Logs what was dropped since the last call (call it periodically; gatewayd does every 10 s).
    public func reportDrops() {
        let (device, translator): ([String: UInt64], TranslatorStatistics?) = lock.withLock {
            var d: [String: UInt64] = [:]
            if let s = self.device?.statistics {
                for child in Mirror(reflecting: s).children {
                    if let l = child.label, l.hasPrefix("dropped"), let v = child.value as? UInt64 { d[l] = v }
                }
            }
            return (d, self.translator?.statistics.translation)
        }
        var lines: [String] = []
        for (name, value) in device.sorted(by: { $0.key < $1.key }) {
            let new = value &- (reportedDrops[name] ?? 0)
            reportedDrops[name] = value
            if new > 0 { lines.append("tunnel: dropped \(new) packet(s) in the last interval: \(name)") }
        }
        if let t = translator {
            for reason in TranslationDrop.allCases where reason != .multicast {   // the kernel's own link-local chatter
                let key = "nat64Dropped-\(reason)", value = t.dropped[reason]
                let new = value &- (reportedDrops[key] ?? 0)
                reportedDrops[key] = value
                guard new > 0 else { continue }
                var line = "nat64: dropped \(new) packet(s) in the last interval: \(reason)"
                if let d = t.lastDrop, d.reason == reason {
                    line += " (last: \(d.source?.description ?? "?") -> \(d.destination?.description ?? "?")\(embedded(d.destination)))"
                }
                line += ": " + explain(reason, destination: t.lastDrop?.reason == reason ? t.lastDrop?.destination : nil)
                lines.append(line)
            }
        }
        for l in lines { log(l) }
    }

    /// " = 192.0.2.1" for an address inside the NAT64 prefix.
    func embedded(_ a: IPAddress?) -> String {
        guard case .v6(let v6)? = a, let n = config.nat64, n.prefix.contains(v6),
              let v4 = try? v6.embeddedIPv4(prefixLength: n.prefix.length) else { return "" }
        return " = \(v4)"
    }

    /// What a drop class means for the operator, and what to do.
    func explain(_ reason: TranslationDrop, destination: IPAddress?) -> String {
        switch reason {
        case .unmappable:
            if case .v6(let v6)? = destination, let n = config.nat64, n.prefix == NAT64Settings(interface: "").prefix,
               n.prefix.contains(v6), let v4 = try? v6.embeddedIPv4(prefixLength: n.prefix.length), !v4.isGloballyRoutable {
                return "\(v4) is not a global IPv4 address, and the Well-Known Prefix \(n.prefix) must not carry one (RFC 6052 §3.1); "
                    + "set [nat64] prefix to a network-specific prefix (e.g. 64:ff9b:1::/96, RFC 8215) to reach it; the sender got an ICMPv6 Address Unreachable"
            }
            return "no mapping for an address (outside the NAT64 prefix and the clients' own mappings); the sender got an ICMPv6 Address Unreachable when it was a client"
        case .hopLimit: return "hop limit or TTL ran out (a Time Exceeded went back)"
        case .tooBig: return "too big for the next hop (Packet Too Big / Fragmentation Needed went back)"
        case .sourceRoute: return "a source route (an ICMP error went back)"
        case .untranslatableICMP: return "an ICMP message with no equivalent in the other family (RFC 7915 drops it)"
        case .fragmentedICMP: return "a fragmented ICMP message (its checksum cannot be translated; an ICMP error went back)"
        case .udpZeroChecksum: return "UDP without a checksum (RFC 7915 §4.5; an ICMP error went back)"
        case .extensionHeaderProtocol: return "IPv4 carrying an IPv6 extension-header protocol number (a Protocol Unreachable went back)"
        case .malformed: return "not a packet the translator can read"
        case .badHeaderChecksum: return "an IPv4 header checksum is wrong"
        case .multicast: return "multicast or broadcast (never translated)"
        case .extensionHeaderAfterFragment: return "IPv6 with an extension header after its Fragment header (RFC 7915 §5.1.1; an ICMPv6 error went back)"
        }
    }
}

// MARK: Clients' last endpoints (issue 28: one round trip after a restart, not a rekey timer)

extension Gateway {
    var endpointsPath: String { config.stateDirectory + "/endpoints" }

    /// Writes each client's current endpoint ("NAME HOST:PORT" lines, mode 0600) when it changed;
    /// gatewayd calls it every 10 s and at stop.
    public func saveEndpoints() {
        let text: String = lock.withLock {
            let peers = peerTable()
            return peersByName.keys.sorted().compactMap { name -> String? in
                guard let key = Bytes32(base64: peersByName[name]!.publicKey), let e = peers[key]?.configuration.endpoint else { return nil }
                return "\(name) \(e)\n"
            }.joined()
        }
        guard text != lock.withLock({ savedEndpoints }), !text.isEmpty else { return }
        let tmp = endpointsPath + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
              rename(tmp, endpointsPath) == 0 else { return }
        lock.withLock { savedEndpoints = text }
    }

    /// The endpoints file, by client name (a line that does not read is skipped).
    func loadEndpoints() -> [String: Endpoint] {
        guard let data = FileManager.default.contents(atPath: endpointsPath) else { return [:] }
        var out: [String: Endpoint] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, let e = Endpoint(parts[1]) else { continue }
            out[parts[0]] = e
        }
        savedEndpoints = String(decoding: data, as: UTF8.self)
        return out
    }
}
