// Renumbering while running (issue 24): the ISP changed the prefix, and `gatewayctl prefix set`
// (from a DHCPv6-PD client's hook, or by hand) tells gatewayd. Every lease keeps its position in
// the new prefix (AddressAllocator.renumber, one store transaction), the plan is made again and
// applied (the gateway's address on the TUN, client routes, proxy entries or the responder's
// list, peers' allowed IPs, the firewall, the translator), connected clients are told to ask for
// their lease again (LeaseMessage kind 5), and the hook and the log say what changed.
import AddressPool
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import TunnelCore

/// What a renumbering did.
public struct RenumberResult: Sendable, Codable, Equatable {
    public var oldPrefix: String
    public var newPrefix: String
    /// Leases moved (active and released).
    public var moved: Int
    /// Clients told to ask for their lease again.
    public var clientsTold: Int
    /// When the new prefix's valid lifetime ends (seconds since 1970), if it has one.
    public var validUntil: Int64? = nil
    /// Earlier prefixes still routed, deprecated, until their valid lifetime ends.
    public var retiring: [RetiringPrefix] = []
}

extension Gateway {
    /// Moves the gateway and its clients to `prefix`, valid for `valid` seconds and preferred for
    /// `preferred` (a DHCPv6-PD lease's lifetimes; nil: no lifetime). The prefix it leaves stays
    /// routed, deprecated, for `oldValid` seconds, or the rest of its own valid lifetime, or two
    /// hours. The same prefix again renews its lifetimes. Refused, with nothing changed, when the
    /// prefix is not global unicast space, is a documentation prefix while the configured one is
    /// not, does not fit the allocation (too long for the clients' positions or delegated
    /// prefixes), comes with a valid lifetime of 0 or a preferred one above the valid one, or
    /// `prefix_source` is `static`.
    public func renumber(to prefix: IPv6Prefix, preferred: UInt32? = nil, valid: UInt32? = nil, oldValid: UInt32? = nil) throws(GatewayError) -> RenumberResult {
        try renumber(to: prefix, preferred: preferred, valid: valid, oldValid: oldValid, source: .external)
    }

    /// `renumber` by `source`; `uplinkAddress` (the uplink's SLAAC address, `ra`) is kept out of the pool.
    func renumber(to prefix: IPv6Prefix, preferred: UInt32?, valid: UInt32?, oldValid: UInt32?, source: PrefixSource,
                  uplinkAddress: IPv6Address? = nil) throws(GatewayError) -> RenumberResult {
        lock.lock(); defer { lock.unlock() }
        let old = config
        func refuse(_ why: String) -> GatewayError { .setup(SetupFailure("prefix \(prefix)", "\(why); keeping \(old.ipv6Prefix)")) }
        guard old.prefixSource == source || (source == .external && old.prefixSource.isSetFromOutside) else {
            let why = old.prefixSource == .ra ? "prefix_source is \"ra\": the prefix follows the router advertisements on \(old.uplink)"
                : "prefix_source is \"static\": the prefix is the config file's (change ipv6.prefix and restart; clients keep their positions), or set prefix_source = \"external\""
            throw .setup(SetupFailure("prefix \(prefix)", why))
        }
        if let why = fileConfig.prefixRefusal(prefix, preferred: preferred, valid: valid) { throw refuse(why) }
        let now = Self.wallClock()
        if prefix == old.ipv6Prefix {
            // A renewal (or a rebind after the server was away): new lifetimes, nothing moves.
            let wasExpired = prefixState.validUntil.map { $0 <= now } ?? false
            prefixState.preferredUntil = preferred.map { now + Int64($0) }
            prefixState.validUntil = valid.map { now + Int64($0) }
            prefixExpirySaid = false; prefixDeprecationSaid = false
            let saved = savePrefixState()
            if wasExpired { log("prefix \(prefix): lifetimes renewed after it expired (valid \(valid.map { "\($0) s" } ?? "without end")): back in service") }
            if !saved { log("warning: could not write \(old.prefixStatePath)") }
            return RenumberResult(oldPrefix: "\(old.ipv6Prefix)", newPrefix: "\(prefix)", moved: 0, clientsTold: 0, validUntil: prefixState.validUntil, retiring: prefixState.retiring)
        }
        var new = old.renumbered(to: prefix)
        if let u = uplinkAddress {
            // The file's reservations moved, and the uplink's own address (not at ::2 with SLAAC).
            new.reservedIPv6 = fileConfig.renumbered(to: prefix).reservedIPv6 + [IPv6Prefix(containing: u, length: 128)]
        }
        // With NPTv6 the leases stay in the inside prefix: only the translation moves.
        var moved: [(old: LeaseRecord, new: LeaseRecord)] = []
        if new.nptPrefix == nil {
            do { moved = try allocator.renumber(to: GatewayPlanner.pools(new)[0]) } catch {
                throw .setup(SetupFailure("prefix \(prefix)", "\(error)", underlying: error))
            }
        }
        configLock.withLock { storedConfig = new }
        prefixState = prefixState.moved(to: prefix, preferred: preferred, valid: valid, oldValid: oldValid, now: now)
        retiringPrefixes = prefixState.retiringPrefixes(at: now)
        prefixChangedAt = now
        prefixExpirySaid = false; prefixDeprecationSaid = false
        let remembered = savePrefixState()
        if device != nil {
            if new.allocation == .hosts {
                let found = try? rk.lookupRoute(to: .v6(new.effectiveISPRouter))
                ispRouteNeeded = found?.interfaceIndex != uplinkIndex || found?.protocolNumber == RouteSocket.sixgateProtocol
            }
            for c in peersByName.values { try? setPeer(c) }
            applyPlan("renumber")
            restartResponder()
            // The gateway's own address sits in the firewall's fixed rules: the table is made again.
            if filterApplied { do { try applyFirewall() } catch { log("firewall: \(error)") } }
            updateTranslator()
        }
        let told = new.nptPrefix == nil ? tellClientsToRenew() : 0
        let kept = prefixState.retiring.first { $0.prefix == old.ipv6Prefix.description }
        log("prefix change" + (source == .ra ? " (router advertisement on \(new.uplink))" : "") + ": \(old.ipv6Prefix) -> \(prefix)" + (valid.map { " (valid \($0) s, preferred \(preferred ?? $0) s)" } ?? "")
            + (new.nptPrefix.map { ": NPTv6 now maps \($0) to \(prefix), clients keep their addresses" } ?? "")
            + ": \(moved.count) lease(s) moved, each at its position; gateway address \(new.effectiveGatewayAddress); \(told) connected client(s) told to ask again; "
            + (kept.map { "\(old.ipv6Prefix) stays routed, deprecated, for \($0.validUntil - now) s" } ?? "\(old.ipv6Prefix) removed at once")
            + (remembered ? "" : "; warning: could not write \(new.prefixStatePath), so a restart starts from \(old.ipv6Prefix) again"))
        hookQueue.submit { [self] in
            runHook("prefix-change", ["SIXGATE_OLD_PREFIX": old.ipv6Prefix.description, "SIXGATE_NEW_PREFIX": prefix.description])
        }
        return RenumberResult(oldPrefix: "\(old.ipv6Prefix)", newPrefix: "\(prefix)", moved: moved.count, clientsTold: told, validUntil: prefixState.validUntil, retiring: prefixState.retiring)
    }

    /// Seconds since 1970.
    static func wallClock() -> Int64 { Int64(time(nil)) }

    /// Writes STATE/prefix (external source only); false on failure.
    func savePrefixState() -> Bool {
        guard config.prefixSource != .static else { return true }
        return prefixState.render().write(atomicallyTo: config.prefixStatePath)
    }

    /// The NDP responder answers inside the client prefixes (the current and the retiring ones):
    /// a new one when they change (lock held).
    func restartResponder() {
        guard let r = responder else { return }
        r.stop()
        var rule = ProxyRule(interface: config.uplink, prefixes: [config.ipv6Prefix] + retiringPrefixes)
        rule.listType = .white
        rule.addresses = plan.hostAddresses
        responder = try? Responder(rule: rule)
        responder?.log = { [weak self] in self?.log("ndp: \($0)") }
        responder?.start()
    }

    /// The prefix's lifetimes, checked every few seconds: a retiring prefix whose valid lifetime
    /// ended is removed (routes, proxy entries, allowed IPs, firewall); the current prefix's end of
    /// preferred and valid lifetime without a renewal is said once each (the DHCPv6 server or
    /// client is away). The prefix stays configured: nothing better can replace it, and when the
    /// server is back the renewal (`prefix set` of the same prefix) puts it back in service.
    public func checkPrefixLifetimes() {
        lock.lock(); defer { lock.unlock() }
        let now = Self.wallClock()
        let still = prefixState.retiringPrefixes(at: now)
        if still != retiringPrefixes {
            let gone = retiringPrefixes.filter { !still.contains($0) }
            prefixState.retiring.removeAll { r in gone.contains { $0.description == r.prefix } }
            retiringPrefixes = still
            _ = savePrefixState()
            if device != nil {
                for c in peersByName.values { try? setPeer(c) }
                applyPlan("old prefix expired")
                restartResponder()
            }
            log("prefix \(gone.map(\.description).joined(separator: " ")): valid lifetime over: its routes, proxy entries and the clients' allowed IPs in it removed")
        }
        if let p = prefixState.preferredUntil, p <= now, !prefixDeprecationSaid, prefixState.validUntil.map({ $0 > now }) ?? true {
            prefixDeprecationSaid = true
            log("warning: prefix \(config.ipv6Prefix): preferred lifetime over without a renewal from its source; valid for \(prefixState.validUntil.map { "\($0 - now) s more" } ?? "without end") (is the DHCPv6 client running, the ISP's server reachable?)")
        }
        if let v = prefixState.validUntil, v <= now, !prefixExpirySaid {
            prefixExpirySaid = true
            log("error: prefix \(config.ipv6Prefix): valid lifetime ended without a renewal: the ISP no longer routes it, so clients' IPv6 fails until a prefix arrives (gatewayctl prefix set, or the DHCPv6 client's hook); kept configured meanwhile")
        }
    }

    /// What the allocator found at load: leases of an earlier prefix moved to the configured one at
    /// the same positions (said, with examples), a store migrated to record positions.
    func noteRenumbering() {
        let moved = allocator.renumbered
        if !moved.isEmpty {
            previousPrefixes = Array(Set(moved.compactMap { m -> IPv6Prefix? in
                guard m.old.pool == Self.v6Pool, case .v6(let p) = m.old.prefix else { return nil }
                return IPv6Prefix(containing: p.network, length: config.ipv6Prefix.length)
            })).sorted { $0.network.rawValue < $1.network.rawValue }
            let examples = moved.prefix(3).map { "\($0.old.client) \($0.old.prefix) -> \($0.new.prefix)" }.joined(separator: ", ")
            notes.append("prefix change: \(moved.count) lease(s) moved to the configured pools at the same positions (\(examples)\(moved.count > 3 ? ", ..." : "")); clients keep their interface identifiers; stock WireGuard clients need their new addresses (gatewayctl clients show NAME)")
        }
        for o in allocator.orphaned.prefix(5) {
            notes.append("warning: lease of \(o.client) in pool \(o.pool), \(o.prefix), fits no configured pool and cannot move to the same position: kept in the store, not served")
        }
        if allocator.positionsFilled > 0 { notes.append("lease store: recorded the position of \(allocator.positionsFilled) lease(s) (schema v2), so that clients keep them across a prefix change") }
    }

    /// Sends a lease "renew" (kind 5) to every client with a session, from the gateway's
    /// link-local address to the client's (lock held). Returns how many were sent.
    func tellClientsToRenew() -> Int {
        guard let device else { return 0 }
        var told = 0
        let now = Int64(Date().timeIntervalSince1970)
        for p in device.peerStatuses() where now - p.lastHandshake.seconds < 180 {
            let clientAddress = p.configuration.publicKey.withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
            guard let payload = try? LeaseMessage(kind: .renew, transaction: 0).encode(),
                  let packet = try? PacketRepr.ipv6(source: LeaseMessage.gatewayLinkLocal, destination: clientAddress, hopLimit: 255,
                                                    .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: LeaseMessage.port), payload: payload)).emit()
            else { continue }
            if device.send(packet: packet, to: p.configuration.publicKey) { told += 1 }
        }
        return told
    }
}

extension GatewayConfiguration {
    /// This configuration moved to `prefix`: the ISP router's, the uplink's and the gateway's
    /// addresses, when given, keep their positions; reserved prefixes inside the old prefix move
    /// with it.
    public func renumbered(to prefix: IPv6Prefix) -> GatewayConfiguration {
        var c = self
        let old = ipv6Prefix
        func move(_ a: IPv6Address) -> IPv6Address {
            guard old.contains(a) else { return a }
            let host = a.rawValue & ~IPv6Prefix.mask(old.length)
            return IPv6Address(rawValue: prefix.network.rawValue | (host & ~IPv6Prefix.mask(prefix.length)))
        }
        c.ipv6Prefix = prefix
        c.ispRouter = ispRouter.map(move)
        c.uplinkAddress = uplinkAddress.map(move)
        c.gatewayAddress = gatewayAddress.map(move)
        c.reservedIPv6 = reservedIPv6.map { r in old.contains(r.network) ? IPv6Prefix(containing: move(r.network), length: max(r.length, prefix.length)) : r }
        return c
    }

    /// Why this configuration (the file's) cannot take `prefix` with these lifetimes from its
    /// source (nil when it can): not global unicast space, a documentation prefix on a production
    /// config, a valid lifetime of 0 or a preferred one above it, too long for the allocation.
    /// The one check for a running gatewayd and for `gatewayctl prefix set` without one.
    public func prefixRefusal(_ prefix: IPv6Prefix, preferred: UInt32?, valid: UInt32?) -> String? {
        if let why = Self.unusablePrefixReason(prefix) { return why }
        if let doc = Self.documentationRange(prefix), Self.documentationRange(ipv6Prefix) == nil {
            return "\(prefix) is in the documentation range \(doc), and the configured prefix \(ipv6Prefix) is not: a test prefix reached a production gateway"
        }
        if valid == 0 { return "a valid lifetime of 0 withdraws a prefix (RFC 8415 §18.2.10.1), it does not delegate one" }
        if let p = preferred, let v = valid, p > v { return "preferred lifetime \(p) s is longer than the valid lifetime \(v) s (RFC 8415 §21.22)" }
        if allocation == .prefixes && prefix.length > delegatedLength {
            return "shorter delegated prefixes (/\(delegatedLength)) than the clients need cannot come out of a /\(prefix.length)"
        }
        if allocation == .hosts && prefix.length > 124 {
            return "a /\(prefix.length) leaves no room for clients beside the gateway, the ISP router and the uplink"
        }
        if let n = nptPrefix, n.length != prefix.length { return "NPTv6 maps \(n) to a prefix of the same length, not a /\(prefix.length)" }
        return nil
    }

    /// The documentation range (RFC 3849, RFC 9637) `prefix` overlaps, if any.
    public static func documentationRange(_ prefix: IPv6Prefix) -> IPv6Prefix? {
        ["2001:db8::/32", "3fff::/20"].compactMap(IPv6Prefix.init).first { $0.contains(prefix.network) || prefix.contains($0.network) }
    }

    /// Why `prefix` cannot be a client prefix (nil when it can): not global unicast space.
    public static func unusablePrefixReason(_ prefix: IPv6Prefix) -> String? {
        let checks: [(String, String)] = [("::ffff:0:0/96", "the IPv4-mapped range"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
                                          ("::/8", "reserved by the IETF (loopback, unspecified, IPv4-compatible)"), ("64:ff9b::/96", "the NAT64 Well-Known Prefix")]
        for (text, name) in checks {
            let range = IPv6Prefix(text)!
            if range.contains(prefix.network) || prefix.contains(range.network) { return "\(prefix) overlaps \(name) (\(range))" }
        }
        return nil
    }
}

extension String {
    /// Writes the text to `path` through a temporary file and a rename; false on failure.
    func write(atomicallyTo path: String) -> Bool {
        (try? write(toFile: path, atomically: true, encoding: .utf8)) != nil
    }
}

extension Gateway {
    /// The uplink's SLAAC-configured /64 (`prefix_source = "ra"`): its global, stable (not
    /// temporary), non-tentative address with a lifetime, the one preferred longest; nil when none.
    static func routerAdvertisedPrefix(_ rk: RouteSocket, uplink: String) -> (prefix: IPv6Prefix, address: IPv6Address, preferred: UInt32, valid: UInt32)? {
        guard let all = try? rk.addressLifetimes(interface: uplink) else { return nil }
        let candidates = all.compactMap { e -> (prefix: IPv6Prefix, address: IPv6Address, preferred: UInt32, valid: UInt32, deprecated: Bool)? in
            let a = e.address
            guard case .v6(let v6) = a.address, a.prefixLength == 64, a.scope == 0,
                  a.flags & (InterfaceAddress.permanentFlag | InterfaceAddress.tentativeFlag | 0x01) == 0 else { return nil }   // 0x01: IFA_F_TEMPORARY
            let p = IPv6Prefix(containing: v6, length: 64)
            guard GatewayConfiguration.unusablePrefixReason(p) == nil else { return nil }
            return (p, v6, e.preferred, e.valid, a.deprecated || e.preferred == 0)
        }
        return candidates.max { a, b in (a.deprecated ? 0 : 1, a.preferred, a.valid) < (b.deprecated ? 0 : 1, b.preferred, b.valid) }
            .map { ($0.prefix, $0.address, $0.preferred, $0.valid) }
    }

    /// `prefix_source = "ra"`, every few seconds: a new router-advertised prefix on the uplink
    /// renumbers the gateway (the one it replaces stays for the rest of its valid lifetime); the
    /// same one renews the lifetimes. Nothing when none is seen: `checkPrefixLifetimes` says when
    /// the last one's lifetimes end.
    public func followRouterAdvertisements() {
        let c = config
        guard c.prefixSource == .ra, let found = Self.routerAdvertisedPrefix(rk, uplink: c.uplink) else { return }
        func seconds(_ v: UInt32) -> UInt32? { v == UInt32.max ? nil : v }
        if found.prefix == c.ipv6Prefix {
            lock.withLock {
                let now = Self.wallClock()
                let valid = seconds(found.valid).map { now + Int64($0) }, preferred = seconds(found.preferred).map { now + Int64($0) }
                let wasExpired = prefixState.validUntil.map { $0 <= now } ?? false
                // Written only when it moved (the kernel counts down between advertisements).
                guard abs((valid ?? 0) - (prefixState.validUntil ?? 0)) > 10 || abs((preferred ?? 0) - (prefixState.preferredUntil ?? 0)) > 10 || !prefixState.fromSource else { return }
                prefixState.validUntil = valid
                prefixState.preferredUntil = preferred
                prefixState.fromSource = true
                prefixExpirySaid = false; prefixDeprecationSaid = false
                _ = savePrefixState()
                if wasExpired { log("prefix \(found.prefix): advertised again on \(c.uplink): back in service") }
            }
            return
        }
        do {
            _ = try renumber(to: found.prefix, preferred: seconds(found.preferred), valid: seconds(found.valid), oldValid: nil, source: .ra, uplinkAddress: found.address)
        } catch {
            lock.withLock {
                if lastRefusedAdvertisement != found.prefix { log("router advertisement on \(c.uplink): \(error)") }
                lastRefusedAdvertisement = found.prefix
            }
        }
    }
}
