import PacketKit
import Testing
@testable import TunnelCore

/// Two WireGuardEngines wired together in memory on a fake clock: every handshake path and timer rule
/// of the paper's §5-6, without root, sockets or waiting (the protocol's real constants: 120 s rekey,
/// 180 s reject, 540 s until keys are zeroed, run in milliseconds).
final class EnginePair {
    let a: WireGuardEngine, b: WireGuardEngine
    let keyA = X25519.generatePrivateKey(), keyB = X25519.generatePrivateKey()
    var publicA: Bytes32 { X25519.publicKey(keyA) }
    var publicB: Bytes32 { X25519.publicKey(keyB) }
    var endpointA = Endpoint("192.0.2.1:51820")!
    let endpointB = Endpoint("192.0.2.2:51821")!
    var now = 1000.0
    /// What each side delivered to its TUN device, and every datagram each side sent.
    var deliveredA: [[UInt8]] = [], deliveredB: [[UInt8]] = []
    var keepalivesAtA = 0, keepalivesAtB = 0
    var sentByA: [[UInt8]] = [], sentByB: [[UInt8]] = []
    var eventsA: [PeerEvent] = [], eventsB: [PeerEvent] = []
    /// Datagrams for which this returns true are lost on the way (side "a" or "b" sent them).
    var lose: (String, [UInt8]) -> Bool = { _, _ in false }

    init(timers: TunnelTimers = TunnelTimers(), thresholdB: Int = 1000, keepaliveA: UInt16 = 0, aKnowsB: Bool = true) throws {
        a = WireGuardEngine(timers: timers, now: now)
        b = WireGuardEngine(timers: timers, underLoadThreshold: thresholdB, now: now)
        a.configure(privateKey: keyA); b.configure(privateKey: keyB)
        // Initiation timestamps and "latest handshake" follow the fake clock, not the real one.
        for e in [a, b] {
            e.timestampClock = { [unowned self] in TAI64N(seconds: 0x4000_0000_0000_000a + UInt64(self.now), nanoseconds: UInt32((self.now - self.now.rounded(.down)) * 1e9)) }
            e.wallClock = { [unowned self] in (Int64(self.now), 0) }
        }
        try a.setPeer(PeerConfiguration(publicKey: publicB, endpoint: aKnowsB ? endpointB : nil,
                                        allowedIPs: [try IPPrefix.parse("2001:db8:77::2/128")], persistentKeepalive: keepaliveA))
        try b.setPeer(PeerConfiguration(publicKey: publicA, endpoint: nil, allowedIPs: [try IPPrefix.parse("2001:db8:77::1/128")]))
    }

    /// An IPv6 packet (no next header) with `payload` bytes after the header.
    static func packet(from: UInt8, to: UInt8, payload: Int = 100, tag: UInt8 = 0) -> [UInt8] {
        var p: [UInt8] = [0x60, 0, 0, 0, UInt8(payload >> 8), UInt8(payload & 0xff), 59, 64]
        p += [0x20, 0x01, 0x0d, 0xb8, 0, 0x77] + [UInt8](repeating: 0, count: 9) + [from]   // 2001:db8:77::from
        p += [0x20, 0x01, 0x0d, 0xb8, 0, 0x77] + [UInt8](repeating: 0, count: 9) + [to]
        return p + [UInt8](repeating: tag, count: payload)
    }

    /// Moves datagrams between the two until both outboxes are empty.
    func exchange() {
        for _ in 0..<100 {
            let (outA, evA) = a.takeOutput(), (outB, evB) = b.takeOutput()
            eventsA += evA; eventsB += evB
            if outA.isEmpty && outB.isEmpty { return }
            for (d, e) in outA {
                sentByA.append(d)
                guard e == endpointB, !lose("a", d) else { continue }
                take(b.receive(datagram: d, from: endpointA, now: now), atA: false)
            }
            for (d, e) in outB {
                sentByB.append(d)
                guard e == endpointA, !lose("b", d) else { continue }
                take(a.receive(datagram: d, from: endpointB, now: now), atA: true)
            }
        }
    }

    func take(_ r: WireGuardEngine.Received, atA: Bool) {
        switch r {
        case .packet(let p, _): if atA { deliveredA.append(p) } else { deliveredB.append(p) }
        case .keepalive: if atA { keepalivesAtA += 1 } else { keepalivesAtB += 1 }
        default: break
        }
    }

    /// Advances the clock in timer ticks, running both timers and exchanging after each.
    func advance(_ seconds: Double) {
        let end = now + seconds
        while now < end - 1e-9 {
            now = min(end, now + a.timers.tick)
            a.updateTimers(now: now); b.updateTimers(now: now)
            exchange()
        }
    }

    static func isInitiation(_ d: [UInt8]) -> Bool { d.first == 1 && d.count == 148 }
    static func isCookieReply(_ d: [UInt8]) -> Bool { d.first == 3 }
}

struct EngineHandshakeTests {
    typealias P = EnginePair

    @Test func aQueuedPacketTriggersTheHandshakeAndArrivesAfterIt() throws {
        let pair = try P()
        let packet = P.packet(from: 1, to: 2, tag: 7)
        #expect(pair.a.send(packet: packet, now: pair.now))
        #expect(pair.a.outbox.count == 1 && P.isInitiation(pair.a.outbox[0].datagram), "queued, an initiation out")
        pair.exchange()
        #expect(pair.deliveredB == [packet])
        #expect(pair.a.statistics.handshakesCompleted == 1 && pair.b.statistics.handshakesCompleted == 1)
        #expect(pair.a.statistics.packetsSent == 1 && pair.b.statistics.packetsReceived == 1, "a queued packet counts when it goes")
        #expect(pair.a.peerStatus(pair.publicB)?.lastHandshake.seconds == 1000, "latest handshake from the engine's wall clock")
        #expect(pair.eventsA == [.handshakeCompleted(pair.publicB)] && pair.eventsB == [.handshakeCompleted(pair.publicA)])
        #expect(pair.b.endpoint(of: pair.publicA) == pair.endpointA, "the responder learns the initiator's endpoint")
        // The responder answers under the confirmed keypair, without a handshake of its own.
        pair.b.send(packet: P.packet(from: 2, to: 1), now: pair.now)
        pair.exchange()
        #expect(pair.deliveredA.count == 1 && pair.b.statistics.handshakesInitiated == 0)
    }

    /// The device's mode: an initiation's X25519 work is left for `createWantedInitiations`, which
    /// runs it between two locked steps; wanting one twice makes one, and what changed in between
    /// (the peer removed, the device's key replaced) stops it.
    @Test func initiationsCanBeWrittenOutsideTheOwnersLock() throws {
        let pair = try P()
        pair.a.defersInitiationWork = true
        let packet = P.packet(from: 1, to: 2, tag: 9)
        #expect(pair.a.send(packet: packet, now: pair.now))
        #expect(pair.a.send(packet: packet, now: pair.now))
        #expect(pair.a.outbox.isEmpty && pair.a.wantedInitiations.count == 1 && pair.a.hasOutput, "wanted once, nothing written yet")
        var steps = 0
        pair.a.createWantedInitiations(now: pair.now) { step in steps += 1; step() }
        #expect(steps == 2, "taken under the lock, written under it, the X25519 work between")
        #expect(pair.a.outbox.count == 1 && P.isInitiation(pair.a.outbox[0].datagram) && pair.a.wantedInitiations.isEmpty)
        pair.exchange()
        #expect(pair.deliveredB == [packet, packet])

        // Wanted, then the peer removed before the work is done: nothing is sent.
        let other = try P()
        other.a.defersInitiationWork = true
        _ = other.a.send(packet: packet, now: other.now)
        other.a.createWantedInitiations(now: other.now) { step in
            step()
            if other.a.wantedInitiations.isEmpty && other.a.outbox.isEmpty { other.a.removePeer(other.publicB) }
        }
        #expect(other.a.outbox.isEmpty && other.a.statistics.handshakesInitiated == 0)

        // Wanted, then the device's key replaced: the work was for the old key, so nothing is sent.
        let third = try P()
        third.a.defersInitiationWork = true
        _ = third.a.send(packet: packet, now: third.now)
        var first = true
        third.a.createWantedInitiations(now: third.now) { step in
            step()
            if first { first = false; third.a.configure(privateKey: X25519.generatePrivateKey()) }
        }
        #expect(third.a.outbox.isEmpty && third.a.statistics.handshakesInitiated == 0)
    }

    @Test func withNothingQueuedTheInitiatorConfirmsWithAKeepalive() throws {
        let pair = try P()
        #expect(pair.a.initiateHandshake(with: pair.publicB, now: pair.now))
        pair.exchange()
        #expect(pair.keepalivesAtB == 1, "one keepalive confirms the keys (paper §6.1)")
        #expect(pair.b.send(packet: P.packet(from: 2, to: 1), now: pair.now))
        pair.exchange()
        #expect(pair.deliveredA.count == 1 && pair.b.statistics.handshakesInitiated == 0)
    }

    @Test func replaysAreDroppedAndCounted() throws {
        let pair = try P()
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        let data = try #require(pair.sentByA.last)
        #expect(pair.b.receive(datagram: data, from: pair.endpointA, now: pair.now) == .dropped)
        #expect(pair.b.statistics.droppedReplay == 1)
        // A replayed initiation (its timestamp is not newer) is refused too.
        let initiation = try #require(pair.sentByA.first { P.isInitiation($0) })
        pair.now += 1
        #expect(pair.b.receive(datagram: initiation, from: pair.endpointA, now: pair.now) == .handshake)
        #expect(pair.b.statistics.droppedHandshakes == 1 && pair.b.outbox.isEmpty)
    }

    @Test func aSourceOutsideThePeersAllowedIPsIsDropped() throws {
        let pair = try P()
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        // a may send to ::2, but b allows only ::1 as a's source.
        pair.a.send(packet: P.packet(from: 9, to: 2), now: pair.now)
        pair.exchange()
        #expect(pair.deliveredB.count == 1 && pair.b.statistics.droppedAllowedIPs == 1)
    }

    @Test func theLatestAuthenticatedSourceWins() throws {
        let pair = try P()
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        pair.endpointA = Endpoint("198.51.100.9:40000")!   // a roams
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        #expect(pair.b.endpoint(of: pair.publicA) == pair.endpointA)
        pair.b.send(packet: P.packet(from: 2, to: 1), now: pair.now)
        #expect(pair.b.outbox.last?.endpoint == Endpoint("198.51.100.9:40000")!)
        // A forged datagram from elsewhere does not move it (it does not authenticate).
        var forged = try #require(pair.sentByA.last)
        forged[forged.count - 1] ^= 1
        #expect(pair.b.receive(datagram: forged, from: Endpoint("203.0.113.66:1")!, now: pair.now) == .dropped)
        #expect(pair.b.endpoint(of: pair.publicA) == pair.endpointA && pair.b.statistics.droppedAuthentication == 1)
    }

    @Test func underLoadTheResponderDemandsACookieAndTheRetryCarriesIt() throws {
        let pair = try P(thresholdB: 0)   // every handshake message counts as load
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        #expect(pair.b.statistics.cookieRepliesSent == 1 && pair.a.statistics.cookieRepliesReceived == 1)
        #expect(pair.b.statistics.handshakesCompleted == 0, "no DH spent on a message without MAC2")
        // The retransmission after rekey-timeout carries MAC2 and is answered.
        pair.advance(pair.a.timers.rekeyTimeout + 0.4)
        #expect(pair.b.statistics.handshakesCompleted == 1 && pair.deliveredB.count == 1)
    }
}

extension EngineHandshakeTests {
    /// The device runs a handshake's Diffie-Hellman outside its lock, in steps: a peer removed
    /// between them gets no session, and the index reserved for it is freed.
    @Test func aPeerRemovedWhileItsResponseIsMadeGetsNoSession() throws {
        let pair = try P()
        pair.a.initiateHandshake(with: pair.publicB, now: pair.now)
        let initiation = try #require(pair.a.takeOutput().datagrams.first?.datagram)
        guard case .initiation(let identity) = pair.b.beginHandshake(.initiation, initiation, from: pair.endpointA, now: pair.now) else {
            Issue.record("an initiation with a good MAC1 needs its DH step"); return
        }
        let consumed = try? Handshake.consumeInitiation(local: identity, message: initiation, aead: ChaChaPoly())
        let plan = try #require(pair.b.planResponse(consumed, now: pair.now))
        pair.b.removePeer(pair.publicA)   // meanwhile, on another thread
        let made = try? Handshake.createResponse(plan.state, senderIndex: plan.localIndex, receiverIndex: plan.senderIndex,
                                                 psk: plan.psk, cookie: plan.cookie, aead: ChaChaPoly())
        pair.b.finishInitiation(plan, made, from: pair.endpointA, now: pair.now)
        #expect(pair.b.outbox.isEmpty && pair.b.statistics.handshakesCompleted == 0 && pair.b.statistics.droppedHandshakes == 1)
        #expect(pair.b.indices.isEmpty, "the reserved index is freed")
    }
}

struct EngineTimerTests {
    typealias P = EnginePair

    @Test func anUnansweredInitiationIsRetriedThenAbandonedWithItsQueue() throws {
        let pair = try P()
        pair.lose = { _, _ in true }   // b is unreachable
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        pair.advance(5.4)
        #expect(pair.sentByA.filter(P.isInitiation).count == 2, "retried after rekey-timeout (5 s + jitter)")
        pair.advance(pair.a.timers.rekeyAttemptTime)
        #expect(pair.eventsA.contains(.handshakeFailed(pair.publicB)), "given up after rekey-attempt-time (90 s)")
        #expect(pair.a.statistics.droppedNoEndpoint == 1, "the queued packet is dropped and counted")
        let tries = pair.sentByA.filter(P.isInitiation).count
        #expect((15...19).contains(tries), "one try per 5-5.33 s over 90 s: \(tries)")
        pair.advance(30)
        #expect(pair.sentByA.filter(P.isInitiation).count == tries, "and then silence")
    }

    @Test func theInitiatorRekeysAfterRekeyAfterTimeWithoutLosingData() throws {
        let pair = try P()
        var sent = 0
        for _ in 0..<150 {   // a packet every second for 150 s
            pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now); sent += 1
            pair.b.send(packet: P.packet(from: 2, to: 1), now: pair.now)
            pair.advance(1)
        }
        #expect(pair.a.statistics.handshakesInitiated == 2, "a new handshake after 120 s")
        #expect(pair.deliveredB.count == sent, "no packet lost to the key change")
        #expect(pair.b.statistics.droppedUnknownIndex == 0 && pair.a.statistics.droppedUnknownIndex == 0)
    }

    @Test func aSessionPastRejectAfterTimeIsNotUsed() throws {
        let pair = try P()
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        pair.now += pair.a.timers.rejectAfterTime + 1   // silence, no timers run
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        #expect(pair.a.outbox.count == 1 && P.isInitiation(pair.a.outbox[0].datagram), "queued behind a new handshake")
        pair.exchange()
        #expect(pair.deliveredB.count == 2)
    }

    @Test func dataWithoutAnyReplyAfterKeepaliveAndRekeyTimeoutStartsAHandshake() throws {
        let pair = try P()
        pair.a.initiateHandshake(with: pair.publicB, now: pair.now)
        pair.exchange()
        pair.advance(1)
        pair.lose = { side, _ in side == "b" }   // b's answers (its keepalives) are lost
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        pair.advance(14.8)
        #expect(pair.a.statistics.handshakesInitiated == 1)
        pair.advance(0.4)
        #expect(pair.a.statistics.handshakesInitiated == 2, "15 s (keepalive 10 + rekey 5) after the first unanswered packet")
    }

    @Test func theReceiverSendsAPassiveKeepaliveAfterTenSecondsOfSilence() throws {
        let pair = try P()
        pair.a.initiateHandshake(with: pair.publicB, now: pair.now)
        pair.exchange()
        pair.advance(1)
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        let before = pair.keepalivesAtA
        pair.advance(pair.a.timers.keepaliveTimeout - 0.2)
        #expect(pair.keepalivesAtA == before)
        pair.advance(0.3)
        #expect(pair.keepalivesAtA == before + 1 && pair.b.statistics.keepalivesSent == 1)
        pair.advance(30)
        #expect(pair.keepalivesAtA == before + 1, "one keepalive, not one per tick")
    }

    @Test func aPersistentKeepaliveGoesOutEveryIntervalWhenIdle() throws {
        let pair = try P(keepaliveA: 25)
        pair.a.initiateHandshake(with: pair.publicB, now: pair.now)
        pair.exchange()
        let start = pair.keepalivesAtB
        pair.advance(101)
        #expect(pair.keepalivesAtB - start == 4, "every 25 s")
    }

    @Test func keysAreZeroedThreeRejectAfterTimesAfterTheLastHandshake() throws {
        let pair = try P()
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        pair.advance(3 * pair.a.timers.rejectAfterTime - 1)
        #expect(!pair.eventsA.contains(.sessionExpired(pair.publicB)))
        pair.advance(1.2)
        #expect(pair.eventsA.contains(.sessionExpired(pair.publicB)) && pair.eventsB.contains(.sessionExpired(pair.publicA)))
        // A packet now needs a new handshake, which works.
        pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now)
        pair.exchange()
        #expect(pair.deliveredB.count == 2 && pair.a.statistics.handshakesCompleted == 2)
    }

    @Test func aPeerWithoutEndpointIsOnlyAnswered() throws {
        let pair = try P(aKnowsB: false)
        #expect(!pair.a.send(packet: P.packet(from: 1, to: 2), now: pair.now), "nowhere to send it")
        #expect(pair.a.statistics.droppedNoEndpoint == 1 && pair.a.outbox.isEmpty)
        #expect(!pair.b.initiateHandshake(with: pair.publicA, now: pair.now), "b has no endpoint for a either")
    }
}
