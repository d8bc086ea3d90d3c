// The lease exchange inside the tunnel (docs/lease-protocol.md) and the client's own thread:
// requests with backoff, renewals, replies (vetted, then installed), and the periodic check that
// the physical path to the endpoint and the endpoint's name have not moved.
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateConfig
import SixgateDaemon
import SixgateSystem
import Translator
import TunnelCore

extension SixgateClient {
    // MARK: The lease exchange

    var clientLinkLocal: IPv6Address {
        X25519.publicKey(config.privateKey).withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
    }

    func sendRequest() {
        guard let device else { return }
        let request = LeaseMessage(kind: .request, transaction: exchange.withLock { transaction })
        guard let payload = try? request.encode(),
              let packet = try? PacketRepr.ipv6(source: clientLinkLocal, destination: LeaseMessage.gatewayLinkLocal, hopLimit: 255,
                                                .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: LeaseMessage.port), payload: payload)).emit()
        else { return }
        state.leaseRequests += 1
        device.send(packet: packet, to: config.gatewayPublicKey)
    }

    /// Tells the gateway what was left out of its lease (one notice per change, no answer).
    func sendNotice(_ refused: [String]) {
        guard let device else { return }
        var notice = LeaseMessage(kind: .notice, transaction: exchange.withLock { transaction })
        var text = refused.joined(separator: "; ")
        while text.utf8.count > 200 { text.removeLast() }
        notice.message = text
        guard let payload = try? notice.encode(),
              let packet = try? PacketRepr.ipv6(source: clientLinkLocal, destination: LeaseMessage.gatewayLinkLocal, hopLimit: 255,
                                                .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: LeaseMessage.port), payload: payload)).emit()
        else { return }
        device.send(packet: packet, to: config.gatewayPublicKey)
    }

    /// What the vetting needs to know about this host (lock held): its connected networks and
    /// other routes (not the tunnel's, the CLAT's or our own), the endpoint, who holds defaults.
    func hostFacts() -> HostFacts {
        var facts = HostFacts(endpoint: endpoint?.address)
        for v6 in [true, false] {
            for r in (try? rk.routes(ipv6: v6, table: 254)) ?? [] where !isOurs(r.interfaceIndex) && r.protocolNumber != RouteSocket.sixgateProtocol {
                if r.destination.length == 0 {
                    if r.type == 1 { facts.defaultHeldElsewhere.insert(v6) }
                    continue
                }
                if case .v6(let p) = r.destination, p.network.isLinkLocal || p.network.isMulticast { continue }
                // Connected: the kernel's own prefix routes (proto kernel, or link scope).
                if r.protocolNumber == 2 || r.scope == 253 { facts.connected.append(r.destination) } else { facts.routed.append(r.destination) }
            }
        }
        return facts
    }

    /// A link-local packet from the gateway (receive thread): a lease reply is handed to the maintenance thread.
    func receiveControl(_ packet: UnsafeRawBufferPointer) {
        guard let ip = try? IPv6Packet(packet), ip.upperLayerProtocol == .udp, ip.destination == clientLinkLocal,
              let udp = try? UDPDatagram(ip.upperLayer), udp.sourcePort == LeaseMessage.port,
              udp.isChecksumValid(.ipv6(source: ip.source, destination: ip.destination)),
              let message = try? LeaseMessage(parsing: udp.payload), message.kind != .request else { return }
        if message.kind == .renew {
            // The gateway says our lease changed: ask at once (the tunnel authenticated it).
            exchange.withLock { if case .lease = config.addresses { nextRequestAt = 0; requestBackoff = 1 } }
            wakeUp.broadcast()
            return
        }
        exchange.withLock {
            guard message.transaction == transaction else { return }
            pendingReply = message
            leaseReplies += 1
        }
        wakeUp.broadcast()
    }

    func handle(_ event: PeerEvent) {
        switch event {
        case .handshakeCompleted:
            // A new session (first, after a gateway restart, or a rekey): ask again if the last
            // answer is old, so a gateway that lost or changed our lease is noticed at once.
            exchange.withLock { if case .lease = config.addresses, renewAt.isFinite { nextRequestAt = 0 } }
            wakeUp.broadcast()
        default: break
        }
    }

    /// The client's own thread: lease requests with backoff, renewals, replies, and a check every
    /// few seconds that the bypass route still matches the physical path and the endpoint's name.
    func maintain() {
        while lock.withLock({ running }) {
            wakeUp.lock()
            wakeUp.wait(seconds: 0.25)
            wakeUp.unlock()
            lock.lock()
            guard running else { lock.unlock(); return }
            let now = MonotonicClock.seconds()
            if case .lease = config.addresses {
                let reply: LeaseMessage? = exchange.withLock { let r = pendingReply; pendingReply = nil; return r }
                if let reply {
                    if reply.kind == .refusal {
                        log("the gateway refused a lease: \(escapedForLog(reply.message ?? "no reason given")); asking again in 30 s")
                        exchange.withLock { nextRequestAt = now + 30 }
                    } else if reply.kind == .reply {
                        do {
                            let vetted = config.vet(reply, host: hostFacts())
                            if !vetted.refused.isEmpty, vetted.refused != lastRefused {
                                for r in vetted.refused { log("lease: left out \(escapedForLog(r))") }
                                sendNotice(vetted.refused)
                            }
                            lastRefused = vetted.refused
                            try apply(vetted.lease)
                            let life = Double(vetted.lease.lifetime ?? 3600)
                            state.leaseTransaction = reply.transaction
                            exchange.withLock {
                                renewAt = now + life / 2
                                nextRequestAt = renewAt
                                requestBackoff = 1
                                transaction = UInt32.random(in: 1...UInt32.max)
                            }
                        } catch {
                            if error.isFatal, let onFatal {
                                log("lease from the gateway not installed: \(error)")
                                exchange.withLock { nextRequestAt = .infinity }
                                lock.unlock()
                                onFatal(error)
                                lock.lock()
                            } else {
                                log("lease from the gateway not installed: \(error); asking again in 10 s")
                                exchange.withLock { nextRequestAt = now + 10 }
                            }
                        }
                    }
                }
                let due: Bool = exchange.withLock {
                    guard now >= nextRequestAt else { return false }
                    nextRequestAt = now + requestBackoff
                    requestBackoff = min(requestBackoff * 2, 16)
                    return true
                }
                if due { sendRequest() }
            }
            expireDeprecated(now: now)
            watchGateway(now: now)
            if now - lastRouteCheck >= 3 {
                lastRouteCheck = now
                recheckPath(now: now)
            }
            lock.unlock()
        }
    }

    /// Earlier leases whose valid lifetime is over are removed (lock held).
    func expireDeprecated(now: Double) {
        guard var lease = current, !lease.deprecated.isEmpty else { return }
        let over = lease.deprecated.filter { (deprecatedUntil[$0.prefix] ?? 0) <= now }
        guard !over.isEmpty else { return }
        let left = deprecatedUntil
        lease.deprecated.removeAll { d in over.contains(d) }
        for i in lease.deprecated.indices {
            lease.deprecated[i].validLifetime = UInt32(clamping: Int64((left[lease.deprecated[i].prefix] ?? now) - now))
        }
        log("earlier lease \(over.map { "\($0.address)/\($0.prefixLength)" }.joined(separator: " ")): valid lifetime over, removed")
        do { try apply(lease) } catch { log("removing the earlier lease: \(error)") }
    }

    /// The peer's endpoint becomes `fresh`; the lease is applied again for its bypass route.
    func moveEndpoint(to fresh: Endpoint) {
        endpoint = fresh
        state.endpoint = fresh.description
        try? device?.setPeer(PeerConfiguration(publicKey: config.gatewayPublicKey, presharedKey: config.presharedKey, endpoint: fresh,
                                               allowedIPs: config.allowedIPs, persistentKeepalive: config.keepalive))
        if let lease = current { current = nil; try? apply(lease) }
    }

    /// Several endpoints (a group of gateways): when traffic goes out and nothing comes back for
    /// 2 s, a handshake is started as a probe; with no answer 1.5 s later the next endpoint is
    /// taken (round the list) and a handshake started there. Keepalives alone (32 bytes) do not
    /// count as traffic: an idle client does not probe. Lock held.
    func watchGateway(now: Double) {
        guard !config.fallbackEndpoints.isEmpty, let device, let peer = device.peerStatuses().first else { return }
        var w = failover
        defer { failover = w }
        if peer.receivedBytes != w.received { w.received = peer.receivedBytes; w.receivedAt = now; w.probeAt = nil }
        if peer.sentBytes != w.sent {
            if peer.sentBytes &- w.sent != 32 { w.sentAt = now }
            w.sent = peer.sentBytes
        }
        guard w.sentAt > w.receivedAt, now - w.receivedAt >= 2 else { return }
        guard let probe = w.probeAt else {
            w.probeAt = now
            _ = device.initiateHandshake(with: config.gatewayPublicKey)
            return
        }
        guard now - probe >= 1.5 else { return }
        let from = endpointText
        endpointIndex = (endpointIndex + 1) % config.endpoints.count
        do {
            let fresh = try resolveEndpoint()
            log("the gateway at \(from) does not answer (traffic sent, nothing back for \(String(format: "%.1f", now - w.receivedAt)) s): moving to \(endpointText)")
            moveEndpoint(to: fresh)
            _ = device.initiateHandshake(with: config.gatewayPublicKey)
        } catch {
            log("the gateway at \(from) does not answer; the next endpoint \(endpointText): \(error)")
        }
        w.probeAt = nil
        w.receivedAt = now
    }

    /// Network changes: the physical path to the endpoint moved (new default gateway, interface
    /// replaced) or the endpoint's name points elsewhere after handshakes stopped. Lock held.
    func recheckPath(now: Double) {
        guard let device, var ep = endpoint else { return }
        let peer = device.peerStatuses().first
        let sinceHandshake = Double(Int64(Date().timeIntervalSince1970) - (peer?.lastHandshake.seconds ?? 0))
        if Endpoint(endpointText) == nil, sinceHandshake > 135, now - endpointResolvedAt > 30 {
            if let fresh = try? resolveEndpoint(), fresh != ep {
                log("endpoint \(endpointText) now resolves to \(fresh) (was \(ep))")
                ep = fresh
                moveEndpoint(to: fresh)
                return
            }
        }
        // Is the bypass route still the path the kernel would take without it?
        for old in bypassRoutes {
            let others = (try? rk.routes(ipv6: ep.address.isV6, table: 254))?.filter {
                $0.destination.length == 0 && !isOurs($0.interfaceIndex) && $0.type == 1
            } ?? []
            guard let best = others.min(by: { $0.metric < $1.metric }) else { continue }
            // Only default-route changes are followed; a more specific physical route is used as found at start.
            let stillValid = (try? rk.links())?.contains { $0.index == old.interfaceIndex && $0.isUp } ?? true
            if !stillValid || (best.interfaceIndex != old.interfaceIndex || best.gateway != old.gateway) && old.gateway != nil {
                let fresh = Route(destination: old.destination, interfaceIndex: best.interfaceIndex, gateway: best.gateway)
                guard fresh != old else { continue }
                var kernel = reconciler.desired
                kernel.routes.remove(old)
                kernel.routes.insert(fresh)
                if let failure = reconciler.update(to: kernel).failures.first {
                    log("the physical path changed but the endpoint route could not follow: \(failure)")
                } else {
                    bypassRoutes = bypassRoutes.map { $0 == old ? fresh : $0 }
                    state.bypassRoutes = bypassRoutes.map(describe)
                    log("the physical path changed: endpoint route now \(describe(fresh))")
                }
            }
        }
    }
}

/// What the failover watch remembers between ticks.
struct FailoverWatch {
    var received: UInt64 = 0, sent: UInt64 = 0
    var receivedAt = MonotonicClock.seconds(), sentAt = 0.0
    var probeAt: Double?
}
