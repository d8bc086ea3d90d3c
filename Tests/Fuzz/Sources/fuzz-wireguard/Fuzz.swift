// WireGuard message parsing and the handshake state machine of TunnelCore's device, driven as its
// UDP loop drives it (`receive`), in a private network namespace. Each input is a short script:
// raw datagrams (MAC1 fixed up on request, to get past the cheap check), genuine initiations from
// a known peer with a byte mutated, transport messages sealed with the keys a handshake gave,
// handshakes the device starts itself and a mutated response to them, and the device under load
// (cookie replies). The peer's sessions and replay state are reset before every input, so each
// script starts from the same state.
import FuzzSupport
import PacketKit
import SixgateSystem
@testable import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

struct Harness {
    let device: TunnelDevice
    let local: StaticIdentity   // the peer the script plays
    let devicePublic: Bytes32
    let socket: Int32           // where the device sends to the peer: 127.0.0.1:port
    let endpoint: Endpoint
    let aead = ChaChaPoly()
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: TunnelDevice.scratchSize, alignment: 16)
}

func key(_ b: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: b, count: 32))! }

nonisolated(unsafe) let h: Harness = {
    enterPrivateNetworkNamespace()
    let s = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(s, $0, len) } }
    withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(s, $0, &len) } }
    let port = UInt16(bigEndian: a.sin_port)
    do {
        let d = try TunnelDevice(interfaceName: "fzwg0", underLoadThreshold: 1000)
        let deviceKey = key(7), peerKey = key(9)
        try d.configure(privateKey: deviceKey)
        let local = StaticIdentity(privateKey: peerKey)
        let endpoint = Endpoint(address: .v4(IPv4Address("127.0.0.1")!), port: port)
        try d.setPeer(PeerConfiguration(publicKey: local.publicKey, presharedKey: key(3), endpoint: endpoint,
                                        allowedIPs: [IPPrefix("2001:db8:1::/64")!, IPPrefix("192.0.2.0/24")!]))
        return Harness(device: d, local: local, devicePublic: X25519.publicKey(deviceKey), socket: s, endpoint: endpoint)
    } catch {
        fatalError("\(error)")
    }
}()

/// The datagrams the device sent to the peer since the last call.
func sent() -> [[UInt8]] {
    var out: [[UInt8]] = []
    var buffer = [UInt8](repeating: 0, count: 2048)
    while out.count < 64 {
        let n = buffer.withUnsafeMutableBytes { recv(h.socket, $0.baseAddress, 2048, 0) }
        if n < 0 { break }
        out.append(Array(buffer[0..<n]))
    }
    return out
}

nonisolated(unsafe) var deliveries: UInt64 = 0
nonisolated(unsafe) let coalescer = TCPCoalescer()
/// Queue management as the receive thread runs it, with a clock that makes it mark and drop often.
nonisolated(unsafe) var codel: CoDel? = CoDel(target: 1, interval: 2)

func deliver(_ message: [UInt8]) {
    deliveries += 1
    var m = message
    // As the receive thread does over an offload TUN device: decrypted TCP goes through the
    // coalescer, flushed before the buffer is reused.
    let tun = h.device.tun
    let write: TCPCoalescer.Writer = { v, n in _ = tun.write(vectors: v, count: n) }
    m.withUnsafeMutableBytes {
        h.device.receive($0.baseAddress!, length: $0.count, from: h.endpoint, aead: h.aead, scratch: h.scratch, coalescer: coalescer, write: write,
                         codel: &codel, sojourn: Int64(deliveries % 5), now: Int64(deliveries) * 3)
        coalescer.flush(write)
    }
}

func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let d = h.device
    let underLoad = input.u8() == 0xff
    d.lock.withLock {
        if let p = d.engine.peers[h.local.publicKey] {
            d.engine.clearSessions(p)
            p.lastTimestamp = nil
            p.lastInitiationConsumedAt = -1e9
        }
        d.engine.loadWindowStart = MonotonicClock.seconds()
        d.engine.loadWindowCount = underLoad ? 1_000_000 : 0
    }
    _ = sent()
    let before = d.statistics.packetsReceived
    let delivered = deliveries
    var session: (keys: NoiseIKpsk2.TransportKeys, remoteIndex: UInt32)?
    var timestamp: UInt64 = 0x4000_0000_6000_0000
    var steps = 0
    while !input.isEmpty && steps < 16 {
        steps += 1
        switch input.u8() % 5 {
        case 0:   // a raw datagram
            var m = input.take(Int(input.u16() % 400))
            if input.bool(), m.count >= 33, MessageType.classify(UnsafeRawBufferPointer(start: m, count: m.count)) != nil, m[0] != 4 {
                MessageMACs.add(&m, receiverMAC1Key: StaticIdentity.mac1Key(for: h.devicePublic), cookie: nil)
            }
            deliver(m)
        case 1:   // an initiation from the peer, maybe with one byte changed
            timestamp += 1
            let ephemeral = key(input.u8() | 1)
            guard let (message, state, _) = try? Handshake.createInitiation(local: h.local, peerPublicKey: h.devicePublic, senderIndex: input.u32(),
                                                                            timestamp: TAI64N(seconds: timestamp, nanoseconds: 0), ephemeral: ephemeral,
                                                                            cookie: nil, aead: h.aead) else { continue }
            var m = message
            let position = Int(input.u8()), flip = input.u8()
            if flip != 0 {
                m[position % m.count] ^= flip
                if input.bool() { MessageMACs.add(&m, receiverMAC1Key: StaticIdentity.mac1Key(for: h.devicePublic), cookie: nil) }
            }
            deliver(m)
            for reply in sent() where reply.count == WireGuard.responseSize && reply[0] == 2 {
                if let keys = try? Handshake.consumeResponse(state, local: h.local, psk: key(3), message: reply, aead: h.aead) {
                    session = (keys, Handshake.responseIndices(reply).sender)
                }
            }
        case 2:   // a transport message sealed with the session's keys
            guard let s = session else { continue }
            let counter = UInt64(input.u8())
            var inner: [UInt8]
            switch input.u8() % 3 {
            case 0:
                inner = (try? PacketRepr.ipv6(source: IPv6Address("2001:db8:1::2")!, destination: IPv6Address("2001:db8:ffff::1")!,
                                              .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: input.take(Int(input.u8())))).emit()) ?? []
            case 1:
                inner = (try? PacketRepr.ipv6(source: IPv6Address("fe80::2")!, destination: IPv6Address("fe80::1")!,
                                              .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: input.take(Int(input.u8())))).emit()) ?? []
            default:
                inner = input.take(Int(input.u16() % 1500))
            }
            while inner.count % 16 != 0 { inner.append(0) }
            var m = [4, 0, 0, 0] + le32(s.remoteIndex) + le64(counter) + inner + [UInt8](repeating: 0, count: 16)
            let length = inner.count
            m.withUnsafeMutableBytes { b in
                _ = h.aead.seal(key: s.keys.send, nonce: ChaChaPoly.nonce(counter), data: b.baseAddress! + 16, length: length, tag: b.baseAddress! + 16 + length)
            }
            if input.bool() { m[Int(input.u8()) % m.count] ^= 1 }
            deliver(m)
        case 3:   // the device initiates; the peer answers with a response, maybe changed
            d.send(packet: [0x60, 0, 0, 0, 0, 0, 59, 64] + [UInt8](repeating: 0, count: 32), to: h.local.publicKey)
            for m in sent() where m.count == WireGuard.initiationSize && m[0] == 1 {
                guard let (index, state, _) = try? Handshake.consumeInitiation(local: h.local, message: m, aead: h.aead),
                      var (response, _, _) = try? Handshake.createResponse(state, senderIndex: input.u32(), receiverIndex: index, psk: key(3),
                                                                           ephemeral: key(input.u8() | 1), cookie: nil, aead: h.aead) else { continue }
                let flip = input.u8()
                if flip != 0 {
                    response[Int(input.u8()) % response.count] ^= flip
                    if input.bool() { MessageMACs.add(&response, receiverMAC1Key: StaticIdentity.mac1Key(for: h.devicePublic), cookie: nil) }
                }
                deliver(response)
            }
        default:  // time passes for the flood limit
            d.lock.withLock { d.engine.peers[h.local.publicKey]?.lastInitiationConsumedAt = -1e9 }
        }
    }
    _ = sent()
    // An inner packet is counted at most once per datagram delivered (replays are refused).
    let received = d.statistics.packetsReceived - before
    require(received <= deliveries - delivered, "\(received) packets received from \(deliveries - delivered) datagrams")
    return 0
}
