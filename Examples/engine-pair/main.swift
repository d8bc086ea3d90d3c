// Two WireGuard engines talking in memory: WireGuardEngine does no I/O, so a program (or a test)
// decides where datagrams go and what time it is. Here: a handshake, a packet each way, then two
// minutes pass in one step and the initiator rekeys on its next packet.
//   swift run engine-pair
import PacketKit
import TunnelCore

let keyA = X25519.generatePrivateKey(), keyB = X25519.generatePrivateKey()
let a = WireGuardEngine(now: 0), b = WireGuardEngine(now: 0)
a.configure(privateKey: keyA)
b.configure(privateKey: keyB)
// The engine's clocks are the program's: initiation timestamps (a replay guard) follow this one.
nonisolated(unsafe) var clock = 0.0
for e in [a, b] { e.timestampClock = { TAI64N(seconds: 0x4000_0000_0000_000a + UInt64(1_800_000_000 + clock), nanoseconds: 0) } }
let endpointA = Endpoint("192.0.2.1:51820")!, endpointB = Endpoint("192.0.2.2:51820")!
try a.setPeer(PeerConfiguration(publicKey: X25519.publicKey(keyB), endpoint: endpointB, allowedIPs: [try IPPrefix.parse("2001:db8:77::2/128")]))
try b.setPeer(PeerConfiguration(publicKey: X25519.publicKey(keyA), allowedIPs: [try IPPrefix.parse("2001:db8:77::1/128")]))

/// An IPv6 packet 2001:db8:77::`from` -> ::`to` with no next header and 8 bytes of payload.
func packet(from: UInt8, to: UInt8) -> [UInt8] {
    [0x60, 0, 0, 0, 0, 8, 59, 64] + [0x20, 0x01, 0x0d, 0xb8, 0, 0x77] + [UInt8](repeating: 0, count: 9) + [from]
        + [0x20, 0x01, 0x0d, 0xb8, 0, 0x77] + [UInt8](repeating: 0, count: 9) + [to] + [UInt8](repeating: 0xab, count: 8)
}

/// Carries every datagram across until both sides are quiet, printing what arrived.
func exchange(at now: Double) {
    clock = now
    while true {
        let fromA = a.takeOutput().datagrams, fromB = b.takeOutput().datagrams
        if fromA.isEmpty && fromB.isEmpty { return }
        for (d, _) in fromA { report("b", b.receive(datagram: d, from: endpointA, now: now), d) }
        for (d, _) in fromB { report("a", a.receive(datagram: d, from: endpointB, now: now), d) }
    }
}

func report(_ side: String, _ r: WireGuardEngine.Received, _ datagram: [UInt8]) {
    switch r {
    case .handshake: print("\(side): handshake message (type \(datagram[0]), \(datagram.count) bytes)")
    case .packet(let p, _): print("\(side): packet of \(p.count) bytes delivered")
    case .keepalive: print("\(side): keepalive")
    case .control(let p, _): print("\(side): control packet of \(p.count) bytes")
    case .dropped: print("\(side): dropped")
    }
}

a.send(packet: packet(from: 1, to: 2), now: 0)   // queued behind the handshake it starts
exchange(at: 0)
b.send(packet: packet(from: 2, to: 1), now: 0.01)
exchange(at: 0.01)
clock = 121
a.send(packet: packet(from: 1, to: 2), now: 121)   // past rekey-after-time: sent, and a new handshake
exchange(at: 121)
print("a: \(a.statistics.handshakesInitiated) handshakes initiated, \(a.statistics.packetsSent) packets sent; b: \(b.statistics.packetsReceived) received")
