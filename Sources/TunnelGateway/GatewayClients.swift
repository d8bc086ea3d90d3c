// The gateway's clients: enrolling, removing, re-reading the clients folder (SIGHUP). Each change
// updates the registry and the leases, then the plan is applied (`applyPlan`): routes, proxy
// entries, the responder's list, the translator's mappings and the firewall follow together.
import AddressPool
import Foundation
import PacketKit
import RouteKit
import SixgateDaemon
import TunnelCore

extension Gateway {
    /// A client's leases (idempotent: the same ones again), and its CLAT's with `[nat64] clat`.
    func lease(_ c: ClientRecord) throws(GatewayError) -> [Lease] {
        do {
            var leases = try allocator.allocate(client: c.name, inPools: GatewayPlanner.poolNames(config))
            if config.nat64?.clat == true { leases += try allocator.allocate(client: Self.clatKey(c.name), inPools: [Self.v6Pool, Self.nat64Pool]) }
            return leases
        } catch {
            throw .setup("client \(c.name)", error)
        }
    }

    /// The lease key of a client's CLAT address and its NAT64 address.
    static func clatKey(_ name: String) -> String { GatewayPlanner.clatKey(name) }

    /// A client's leases and, when it has them, its CLAT's.
    func leases(of name: String) -> [Lease] { allocator.leases(of: name) + allocator.leases(of: Self.clatKey(name)) }

    /// Gives back a client's leases and its CLAT's (kept for the quiet period).
    func release(_ name: String) throws(AddressPoolError) {
        _ = try allocator.release(client: name)
        _ = try allocator.release(client: Self.clatKey(name))
    }

    /// Makes `c` a peer of the device with the allowed IPs its leases give (lock held). Without
    /// `endpoint`, the one the device has learned for the peer is kept (a renumbering or a
    /// changed record must not make the gateway forget where its clients are).
    func setPeer(_ c: ClientRecord, endpoint: Endpoint? = nil) throws(GatewayError) {
        peersByName[c.name] = c
        guard let device, var peer = planner.part(c, leases: { allocator.leases(of: $0) }).peer else { return }
        peer.endpoint = endpoint ?? device.endpoint(of: peer.publicKey)
        do { try device.setPeer(peer) } catch { throw .setup("peer \(c.name)", error) }
    }

    /// Enrols a client: its file, its leases, and (when running) its peer, route and proxy entry.
    /// `open` and `isolated` are its firewall settings (see `ClientRecord`).
    public func addClient(name: String, publicKey: String, open: [PortOpening] = [], isolated: Bool = true) throws(GatewayError) -> ClientStatus {
        lock.lock(); defer { lock.unlock() }
        try ClientRegistry.validate(name: name)
        guard Bytes32(base64: publicKey) != nil else { throw .invalidKey(publicKey) }
        let record = ClientRecord(name: name, publicKey: publicKey, open: open, isolated: isolated)
        try registry.checkNew(record)
        let leases = try lease(record)
        do {
            try registry.create(record)
        } catch {
            // Another gateway of the group took the key a moment ago: the leases just made for this
            // name go back (a name taken meanwhile is that client's, and so are the leases).
            if case .keyInUse = error { try? release(name) }
            throw error
        }
        if device != nil {
            try setPeer(record)
            applyClient(name, "client \(name)")
        }
        log("client added: \(name) \(leases.map(\.prefix.description).joined(separator: " "))")
        let key = Bytes32(base64: publicKey)!
        return status(record, leases, peers: device?.peerStatus(key).map { [key: $0] } ?? [:])
    }

    /// Removes a client: peer, route, proxy entry, file; its leases are released (kept, so the
    /// same name gets the same addresses back if re-added before the quiet period ends).
    public func removeClient(name: String) throws(GatewayError) {
        lock.lock(); defer { lock.unlock() }
        let record = try registry.read(name)
        if let device, let key = Bytes32(base64: record.publicKey) { device.removePeer(key) }
        peersByName[name] = nil
        applyClient(name, "client \(name)")
        do { try release(name) } catch { throw .setup("release \(name)", error) }
        try registry.remove(name)
        log("client removed: \(name)")
    }

    /// Re-reads the clients folder (SIGHUP): new files become peers, removed files stop being
    /// peers; sessions of unchanged clients are kept.
    public func reloadClients() throws(GatewayError) -> (added: Int, removed: Int) {
        lock.lock(); defer { lock.unlock() }
        let clients = try registry.all()
        let names = Set(clients.map(\.name))
        var added = 0, removed = 0
        var firewallChanged = 0
        for c in clients where peersByName[c.name] != c {
            if let old = peersByName[c.name], old.publicKey == c.publicKey {
                // Only its firewall settings changed: the peer and its session stay as they are.
                peersByName[c.name] = c; firewallChanged += 1
                continue
            }
            if let old = peersByName[c.name], old.publicKey != c.publicKey, let k = Bytes32(base64: old.publicKey) { device?.removePeer(k) }
            _ = try lease(c)
            try setPeer(c); added += 1
        }
        for (name, c) in peersByName where !names.contains(name) {
            if let k = Bytes32(base64: c.publicKey) { device?.removePeer(k) }
            peersByName[name] = nil; removed += 1
            try? release(name)
        }
        // A firewall table someone deleted is put back whole, not updated.
        let tableGone = filterApplied && (try? filterTable.exists()) == false
        if tableGone { log("firewall: table inet \(filterTable.name) is gone; putting it back"); filterApplied = false }
        applyPlan("reload")
        if tableGone { do { try applyFirewall() } catch { log("firewall: \(error)") } }
        log("reload: \(added) client(s) added or changed, \(removed) removed\(firewallChanged > 0 ? ", \(firewallChanged) firewall setting(s) changed" : "")")
        return (added, removed)
    }

    // MARK: Events and hooks

    func handle(_ event: PeerEvent) {
        let key: Bytes32, hook: String, what: String
        if case .unknownSession(let e) = event { groupUnknownSession(e); return }
        switch event {
        case .handshakeCompleted(let k): key = k; hook = "client-connect"; what = "handshake"
        case .sessionExpired(let k): key = k; hook = "client-disconnect"; what = "idle (session expired)"
        default: return
        }
        lock.lock()
        let client = peersByName.values.first { $0.publicKey == key.base64 }
        let connected = client.map { connectedClients.contains($0.name) } ?? false
        if let client { if hook == "client-connect" { connectedClients.insert(client.name) } else { connectedClients.remove(client.name) } }
        lock.unlock()
        guard let client else { return }
        if group != nil {
            // Every handshake (a rekey too): the client may have come back from another gateway.
            if hook == "client-connect" { groupHandshake(client.name, endpoint: device?.endpoint(of: key)) } else { group?.worker.submit { [weak self] in self?.setAnnounced(client.name, false, "session expired") } }
        }
        // client-connect once per session start (not per rekey), client-disconnect once when idle.
        if hook == "client-connect" && connected { return }
        log("\(what): \(client.name)")
        let env = ["SIXGATE_CLIENT": client.name, "SIXGATE_CLIENT_KEY": client.publicKey,
                   "SIXGATE_CLIENT_ADDRESSES": allocator.leases(of: client.name).map(\.prefix.description).joined(separator: " ")]
        // Events arrive on the device's packet threads: hooks run elsewhere, one at a time, in order.
        hookQueue.submit { self.runHook(hook, env) }
    }

    /// Runs hook `name` if configured, with SIXGATE_* facts in its environment; waits at most 10 s.
    func runHook(_ name: String, _ extra: [String: String]) {
        guard let path = config.hooks[name] else { return }
        var env = ProcessInfo.processInfo.environment
        env["SIXGATE_EVENT"] = name
        env["SIXGATE_INTERFACE"] = config.interface
        env["SIXGATE_UPLINK"] = config.uplink
        env["SIXGATE_PREFIX"] = config.ipv6Prefix.description
        env["SIXGATE_GATEWAY_ADDRESS"] = config.effectiveGatewayAddress.description
        if let p = config.ipv4Pool { env["SIXGATE_IPV4_POOL"] = p.description }
        for (k, v) in extra { env[k] = v }
        if let problem = Hook.run(path, environment: env) { log("hook \(name): \(problem)") }
    }
}
