import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
import SixgateSystem
@testable import TunnelCore

/// A WireGuard peer played by the test with the library's message functions over its own UDP
/// socket, so it can send what no honest peer sends: replays, tampered tags, spoofed sources, floods.
final class ScriptedPeer {
    let identity = StaticIdentity(privateKey: X25519.generatePrivateKey())
    let socket: UDPSocket
    let target: Endpoint
    let devicePublicKey: Bytes32
    let aead = ChaChaPoly()
    var cookies = CookieJar()
    var keys: NoiseIKpsk2.TransportKeys?
    var remoteIndex: UInt32 = 0
    var counter: UInt64 = 0

    init(namespace: String, target: Endpoint, devicePublicKey: Bytes32) throws {
        socket = try UDPSocket(port: 0, namespace: .named(namespace))
        self.target = target
        self.devicePublicKey = devicePublicKey
    }

    /// Waits up to `timeout` seconds for one datagram.
    func receive(timeout: Double) -> [UInt8]? {
        let batch = DatagramBatch(capacity: 1, bufferSize: 2048)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if socket.waitReadable(timeoutMilliseconds: 50), socket.receive(batch) == 1 {
                return Array(UnsafeRawBufferPointer(start: batch.buffer(0), count: batch.length(0)))
            }
        }
        return nil
    }

    func initiation(index: UInt32) throws -> (message: [UInt8], state: NoiseIKpsk2.InitiatorState) {
        let (m, state, mac1) = try Handshake.createInitiation(local: identity, peerPublicKey: devicePublicKey, senderIndex: index,
                                                             timestamp: TAI64N.now(), cookie: cookies.current(now: MonotonicClock.seconds()), aead: aead)
        cookies.lastMAC1 = mac1
        return (m, state)
    }

    /// Runs a handshake, answering a cookie reply once if the device is under load. Returns whether it completed.
    func handshake() throws -> Bool {
        for _ in 0..<3 {
            let (m, state) = try initiation(index: 0x5157)
            socket.send(m, to: target)
            guard let reply = receive(timeout: 2) else { return false }
            if reply.first == 3 {
                guard cookies.consume(reply: reply, peerPublicKey: devicePublicKey, now: MonotonicClock.seconds(), aead: aead) else { return false }
                usleep(25_000)   // the device accepts one initiation per 20 ms per peer
                continue
            }
            guard reply.first == 2 else { return false }
            keys = try Handshake.consumeResponse(state, local: identity, psk: .zero, message: reply, aead: aead)
            remoteIndex = Handshake.responseIndices(reply).sender
            return true
        }
        return false
    }

    /// A transport message carrying `packet` under `counter`.
    func transport(_ packet: [UInt8], counter: UInt64) -> [UInt8] {
        let padded = packet + [UInt8](repeating: 0, count: (16 - packet.count % 16) % 16)
        let sealed = aead.seal(key: keys!.send, counter: counter, plaintext: padded, aad: [])
        return [4, 0, 0, 0] + le32(remoteIndex) + withUnsafeBytes(of: counter.littleEndian) { Array($0) } + sealed
    }

    func open(_ message: [UInt8]) -> [UInt8]? {
        guard message.count >= 32, message[0] == 4 else { return nil }
        let counter = message[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        return aead.open(key: keys!.receive, counter: counter, ciphertext: Array(message[16...]), aad: [])
    }
}

/// A Sixgate device in one namespace and a scripted peer in the other.
final class DeviceUnderTest {
    let pair: NamespacePair
    let device: TunnelDevice
    let peer: ScriptedPeer

    init(tag: String, underLoadThreshold: Int = 1000, timers: TunnelTimers = TunnelTimers()) throws {
        pair = try NamespacePair(tag: tag)
        do {
            device = try TunnelDevice(interfaceName: "sgx\(pair.leftInterface.dropFirst(3))", listenPort: 51820,
                                      namespace: .named(pair.left), timers: timers, underLoadThreshold: underLoadThreshold)
            try device.configure(privateKey: X25519.generatePrivateKey())
            let rk = try RouteSocket(namespace: .named(pair.left))
            let index = try rk.interfaceIndex(device.name)
            try rk.addAddress(InterfaceAddress(interfaceIndex: index, address: try IPAddress.parse("2001:db8:77::1"), prefixLength: 64, flags: 0x02 /* IFA_F_NODAD */))
            try rk.setLink(device.name, up: true)
            peer = try ScriptedPeer(namespace: pair.right, target: Endpoint("192.0.2.1:51820")!, devicePublicKey: device.publicKey!)
            try device.setPeer(PeerConfiguration(publicKey: peer.identity.publicKey, allowedIPs: [try IPPrefix.parse("2001:db8:77::2/128")]))
            device.start()
        } catch {
            pair.destroy()
            throw error
        }
    }

    func destroy() { device.stop(); pair.destroy() }

    static func echoRequest(from source: String, sequence: UInt16) throws -> [UInt8] {
        try PacketRepr.ipv6(source: IPv6Address.parse(source), destination: IPv6Address.parse("2001:db8:77::1"),
                            .icmpv6(.echoRequest(identifier: 0x5347, sequence: sequence, data: Array("sixgate".utf8)))).emit()
    }
}

@Suite(.enabled(if: isRoot, "needs root for namespaces and TUN"))
struct DeviceSecurityTests {
    @Test func handshakeFromAnUnknownKeyGetsNoAnswer() throws {
        let dut = try DeviceUnderTest(tag: "wgu")
        defer { dut.destroy() }
        let stranger = try ScriptedPeer(namespace: dut.pair.right, target: dut.peer.target, devicePublicKey: dut.device.publicKey!)
        let (m, _) = try stranger.initiation(index: 1)
        stranger.socket.send(m, to: stranger.target)
        #expect(stranger.receive(timeout: 1) == nil)
        #expect(dut.device.statistics.droppedHandshakes == 1)
        // A wrong MAC1 (sent to another key) is dropped before any DH.
        let wrongTarget = try ScriptedPeer(namespace: dut.pair.right, target: dut.peer.target, devicePublicKey: X25519.publicKey(X25519.generatePrivateKey()))
        wrongTarget.socket.send(try wrongTarget.initiation(index: 2).message, to: wrongTarget.target)
        #expect(wrongTarget.receive(timeout: 0.5) == nil)
        #expect(dut.device.statistics.droppedBadMAC1 == 1)
        // The configured peer is answered.
        #expect(try dut.peer.handshake())
    }

    @Test func anIdlePeerSessionExpiresWithAnEvent() throws {
        var timers = TunnelTimers()
        timers.rekeyAfterTime = 0.4; timers.rejectAfterTime = 0.6; timers.rekeyAttemptTime = 0.3
        let dut = try DeviceUnderTest(tag: "wge", timers: timers)
        defer { dut.destroy() }
        final class Events: @unchecked Sendable { let lock = NSLock(); var list: [PeerEvent] = [] }
        let events = Events()
        dut.device.onEvent = { e in events.lock.withLock { events.list.append(e) } }
        #expect(try dut.peer.handshake())
        let key = dut.peer.identity.publicKey
        // Three reject-after-times (1.8 s here) after the handshake, with no new one, the keys go.
        #expect(eventually(timeout: 5) { events.lock.withLock { events.list.contains(.sessionExpired(key)) } })
        #expect(events.lock.withLock { events.list.filter { $0 == .sessionExpired(key) }.count } == 1)
    }

    @Test func replayedTamperedAndSpoofedPacketsAreDroppedAndCounted() throws {
        let dut = try DeviceUnderTest(tag: "wgs")
        defer { dut.destroy() }
        let peer = dut.peer
        #expect(try peer.handshake())

        // An honest echo request reaches the kernel behind the TUN device, and the reply comes back sealed.
        let good = peer.transport(try DeviceUnderTest.echoRequest(from: "2001:db8:77::2", sequence: 1), counter: 0)
        peer.socket.send(good, to: peer.target)
        let reply = peer.receive(timeout: 2).flatMap { peer.open($0) }
        #expect(reply.map { $0.count >= 48 && $0[40] == 129 } == true, "expected an ICMPv6 echo reply")

        // The same datagram again: a replay.
        peer.socket.send(good, to: peer.target)
        // A flipped ciphertext bit: fails authentication.
        var tampered = peer.transport(try DeviceUnderTest.echoRequest(from: "2001:db8:77::2", sequence: 2), counter: 1)
        tampered[20] ^= 1
        peer.socket.send(tampered, to: peer.target)
        // An inner source outside the peer's allowed IPs: anti-spoofing.
        peer.socket.send(peer.transport(try DeviceUnderTest.echoRequest(from: "2001:db8:99::5", sequence: 3), counter: 2), to: peer.target)
        // Not a WireGuard message at all, and an unknown receiver index.
        peer.socket.send([9, 9, 9], to: peer.target)
        var unknownIndex = peer.transport([], counter: 3); unknownIndex[4] ^= 0xff
        peer.socket.send(unknownIndex, to: peer.target)

        #expect(eventually(timeout: 3) {
            let s = dut.device.statistics
            return s.droppedReplay == 1 && s.droppedAuthentication == 1 && s.droppedAllowedIPs == 1 && s.droppedMalformed == 1 && s.droppedUnknownIndex == 1
        }, "\(dut.device.statistics)")
        #expect(dut.device.statistics.packetsReceived == 1)
        // No reply leaked for any of them.
        #expect(peer.receive(timeout: 0.3) == nil)
    }

    @Test func aBoundedHandshakeFloodIsAnsweredWithCookiesAndTheDeviceStaysResponsive() throws {
        let dut = try DeviceUnderTest(tag: "wgf", underLoadThreshold: 20)
        defer { dut.destroy() }
        // 400 initiations in well under a second from a key the device does not know (valid MAC1).
        let flooder = try ScriptedPeer(namespace: dut.pair.right, target: dut.peer.target, devicePublicKey: dut.device.publicKey!)
        let flood = try flooder.initiation(index: 3).message
        for _ in 0..<400 { flooder.socket.send(flood, to: flooder.target) }
        var cookieReplies = 0
        while let m = flooder.receive(timeout: 0.5) { if m.first == 3 { cookieReplies += 1 } else { Issue.record("unexpected message type \(m[0])") } }
        #expect(cookieReplies >= 300, "cookie replies: \(cookieReplies)")
        #expect(dut.device.statistics.cookieRepliesSent == UInt64(cookieReplies))
        #expect(dut.device.statistics.droppedHandshakes <= 25, "under load no DH is spent on messages without a cookie")

        // Still under load, a real peer gets a cookie, proves it in MAC2, and completes its handshake.
        for _ in 0..<100 { flooder.socket.send(flood, to: flooder.target) }
        #expect(try dut.peer.handshake())
        #expect(dut.peer.cookies.cookie != nil)
    }
}

func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
