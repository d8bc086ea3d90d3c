import PacketKit
import Testing
@testable import SixgateIO
@testable import TunnelCore

/// A reference holder so #expect can call the non-copyable window.
private final class Window { var window = ReplayWindow(); func a(_ c: UInt64) -> Bool { window.accept(c) } }

struct ReplayWindowTests {
    @Test func acceptsEachCounterOnceAndInAnyOrderInsideTheWindow() {
        let w = Window()
        #expect(w.a(0))
        #expect(!w.a(0))
        #expect(w.a(5)); #expect(w.a(3)); #expect(!w.a(3)); #expect(w.a(4))
        #expect(w.a(10_000))
        // Just inside and just outside the window behind the newest counter.
        #expect(w.a(10_000 - ReplayWindow.windowSize))
        #expect(!w.a(10_000 - ReplayWindow.windowSize - 1))
        #expect(!w.a(5))
    }

    @Test func aLargeJumpClearsTheWholeRing() {
        let w = Window()
        for c in 0..<3000 as Range<UInt64> { #expect(w.a(c)) }
        #expect(w.a(1_000_000))
        // Counters that share ring slots with old ones are new again after the jump.
        #expect(w.a(1_000_000 - 64))
        #expect(!w.a(2999))
    }

    @Test func rejectsCountersAtTheRejectAfterMessagesLimit() {
        let w = Window()
        #expect(!w.a(WireGuard.rejectAfterMessages))
        #expect(w.a(WireGuard.rejectAfterMessages - 1))
    }
}

struct AllowedIPsTests {
    @Test func longestPrefixWinsInBothFamilies() throws {
        var t = AllowedIPs<String>()
        t.insert(try IPPrefix.parse("::/0"), "default")
        t.insert(try IPPrefix.parse("2001:db8::/32"), "doc")
        t.insert(try IPPrefix.parse("2001:db8:1::/48"), "site")
        t.insert(try IPPrefix.parse("2001:db8:1::5/128"), "host")
        t.insert(try IPPrefix.parse("198.51.100.0/24"), "v4net")
        t.insert(try IPPrefix.parse("198.51.100.7/32"), "v4host")
        #expect(t.lookup(try IPAddress.parse("2001:db8:1::5")) == "host")
        #expect(t.lookup(try IPAddress.parse("2001:db8:1::6")) == "site")
        #expect(t.lookup(try IPAddress.parse("2001:db8:2::1")) == "doc")
        #expect(t.lookup(try IPAddress.parse("2001:db9::1")) == "default")
        #expect(t.lookup(try IPAddress.parse("198.51.100.7")) == "v4host")
        #expect(t.lookup(try IPAddress.parse("198.51.100.8")) == "v4net")
        #expect(t.lookup(try IPAddress.parse("203.0.113.1")) == nil)
        #expect(t.remove(try IPPrefix.parse("2001:db8:1::5/128")) == "host")
        #expect(t.lookup(try IPAddress.parse("2001:db8:1::5")) == "site")
        t.removeAll { $0 == "site" }
        #expect(t.lookup(try IPAddress.parse("2001:db8:1::5")) == "doc")
        #expect(t.count == 4)
    }
}

struct MessageFramingTests {
    @Test func classifyChecksTypeReservedBytesAndSize() {
        func c(_ b: [UInt8]) -> MessageType? { b.withUnsafeBytes { MessageType.classify($0) } }
        #expect(c([1, 0, 0, 0] + [UInt8](repeating: 0, count: 144)) == .initiation)
        #expect(c([1, 0, 0, 0] + [UInt8](repeating: 0, count: 143)) == nil)
        #expect(c([2, 0, 0, 0] + [UInt8](repeating: 0, count: 88)) == .response)
        #expect(c([3, 0, 0, 0] + [UInt8](repeating: 0, count: 60)) == .cookieReply)
        #expect(c([4, 0, 0, 0] + [UInt8](repeating: 0, count: 28)) == .transport)
        #expect(c([4, 0, 0, 0] + [UInt8](repeating: 0, count: 27)) == nil)
        #expect(c([4, 1, 0, 0] + [UInt8](repeating: 0, count: 28)) == nil)
        #expect(c([5, 0, 0, 0] + [UInt8](repeating: 0, count: 28)) == nil)
        #expect(c([]) == nil)
    }

    @Test func endpointsParseAndPrintAsWgDoes() {
        #expect(Endpoint("192.0.2.1:51820")?.description == "192.0.2.1:51820")
        #expect(Endpoint("[2001:db8::1]:51820")?.description == "[2001:db8::1]:51820")
        #expect(Endpoint("2001:db8::1:51820") == nil)
        #expect(Endpoint("192.0.2.1") == nil)
        #expect(Endpoint("[2001:db8::1]:70000") == nil)
        let e = Endpoint("192.0.2.1:51820")!
        #expect(Endpoint(e.sockaddr) == e)
    }
}

/// The sendmmsg path, over loopback: every queued datagram arrives, in order, to the endpoint it
/// was queued for, both families, and a refused one does not stop the rest.
struct DatagramBatchTests {
    @Test func aBatchSendsEveryDatagramToItsOwnEndpointInOrder() throws {
        let sender = try UDPSocket(port: 0), a = try UDPSocket(port: 0), b = try UDPSocket(port: 0)
        let batch = DatagramBatch(capacity: 8, bufferSize: 2048)
        let toA = Endpoint(address: try IPAddress.parse("::1"), port: a.port)
        let toB = Endpoint(address: try IPAddress.parse("127.0.0.1"), port: b.port)
        let plan: [(Endpoint, Int)] = [(toA, 100), (toB, 200), (toA, 300), (toB, 1400), (toA, 0)]
        for (i, (dest, size)) in plan.enumerated() {
            batch.buffer(batch.count).initializeMemory(as: UInt8.self, repeating: UInt8(i + 1), count: size)
            #expect(batch.append(length: size, to: dest) == false)
        }
        #expect(sender.send(batch) == plan.count)
        #expect(batch.count == 0)
        func drain(_ socket: UDPSocket, expecting: Int) -> [(Int, UInt8)] {
            let rx = DatagramBatch(capacity: 8, bufferSize: 2048)
            var got: [(Int, UInt8)] = []
            for _ in 0..<100 where got.count < expecting {
                guard socket.receive(rx) > 0 else { usleep(10_000); continue }
                #expect(rx.source(0).port == sender.port)
                for i in 0..<rx.count { got.append((rx.length(i), rx.length(i) > 0 ? rx.buffer(i).load(as: UInt8.self) : 0)) }
            }
            return got
        }
        let gotA = drain(a, expecting: 3), gotB = drain(b, expecting: 2)
        #expect(gotA.map(\.0) == [100, 300, 0])
        #expect(gotA.map(\.1) == [1, 3, 0])
        #expect(gotB.map(\.0) == [200, 1400])
        #expect(gotB.map(\.1) == [2, 4])
    }

    /// What queue management reads: each datagram's arrival time from the kernel (SO_TIMESTAMPNS),
    /// beside its packet information, both families; none on a socket that did not ask.
    @Test func receivedDatagramsTellWhenTheyArrived() throws {
        let sender = try UDPSocket(port: 0), stamped = try UDPSocket(port: 0, timestamps: true), plain = try UDPSocket(port: 0)
        #expect(stamped.receiveTimestamps && !plain.receiveTimestamps)
        // The kernel turns receive timestamps on a moment after the first socket asks (a deferred
        // static key); until then a datagram is stamped when it is read.
        usleep(100_000)
        let before = RealtimeClock.nanoseconds()
        for (socket, host) in [(stamped, "::1"), (stamped, "127.0.0.1"), (plain, "::1")] {
            #expect(sender.send([1, 2, 3], to: Endpoint(address: try IPAddress.parse(host), port: socket.port)))
        }
        usleep(20_000)
        let rx = DatagramBatch(capacity: 4, bufferSize: 2048)
        #expect(stamped.receive(rx) == 2)
        let after = RealtimeClock.nanoseconds()
        for i in 0..<2 {
            #expect(rx.receivedAt(i) >= before && rx.receivedAt(i) <= after, "arrived between the send and the receive")
            #expect(after - rx.receivedAt(i) >= 15_000_000, "and waited the 20 ms the test slept")
            #expect(rx.source(i).source != nil, "the destination address is still read beside it")
        }
        #expect(plain.receive(rx) == 1 && rx.receivedAt(0) == 0)
    }

    @Test func aRefusedDatagramIsSkippedAndTheRestStillGo() throws {
        let sender = try UDPSocket(port: 0), a = try UDPSocket(port: 0)
        let batch = DatagramBatch(capacity: 4, bufferSize: 70000)
        let toA = Endpoint(address: try IPAddress.parse("::1"), port: a.port)
        batch.append(length: 10, to: toA)
        batch.append(length: 66000, to: toA)   // larger than any UDP datagram: EMSGSIZE
        batch.append(length: 20, to: toA)
        #expect(sender.send(batch) == 2)
        let rx = DatagramBatch(capacity: 4, bufferSize: 2048)
        var lengths: [Int] = []
        for _ in 0..<50 where lengths.count < 2 {
            if a.receive(rx) > 0 { lengths += (0..<rx.count).map(rx.length) } else { usleep(10_000) }
        }
        #expect(lengths == [10, 20])
    }
}

@Suite(.enabled(if: isRootUser, "needs root to create a TUN device"))
struct UAPITests {
    @Test func setThenGetRoundTripsAndBadLinesNameTheirKey() throws {
        let device = try TunnelDevice(interfaceName: "sgu\(UInt32.random(in: 0...UInt32.max) % 100000)")
        let priv = X25519.generatePrivateKey(), peer = X25519.publicKey(X25519.generatePrivateKey())
        let (e, message) = device.uapiSet("""
            private_key=\(priv.hex)
            listen_port=0
            public_key=\(peer.hex)
            endpoint=[2001:db8::9]:51820
            persistent_keepalive_interval=25
            allowed_ip=2001:db8:1::/64
            allowed_ip=198.51.100.0/24

            """)
        #expect(e == 0, "\(message ?? "")")
        let get = device.uapiGet()
        #expect(get.contains("private_key=\(priv.hex)\n"))
        #expect(get.contains("public_key=\(peer.hex)\n"))
        #expect(get.contains("endpoint=[2001:db8::9]:51820\n"))
        #expect(get.contains("persistent_keepalive_interval=25\n"))
        #expect(get.contains("allowed_ip=2001:db8:1::/64\n") && get.contains("allowed_ip=198.51.100.0/24\n"))
        #expect(get.hasSuffix("errno=0\n\n"))
        #expect(device.peer(for: try IPAddress.parse("198.51.100.9")) == peer)

        let bad = device.uapiSet("public_key=\(peer.hex)\nallowed_ip=2001:db8::/129\n\n")
        #expect(bad.errno == 22)
        #expect(bad.message?.contains("line 2: allowed_ip") == true, "\(bad.message ?? "")")
        #expect(device.uapiSet("listen_port=99999\n\n").message?.contains("line 1: listen_port") == true)
        #expect(device.uapiSet("bogus=1\n\n").errno == 22)
        // Nothing was applied by the refused requests.
        #expect(device.uapiGet() == get)
        // remove=true drops the peer and its allowed IPs.
        #expect(device.uapiSet("public_key=\(peer.hex)\nremove=true\n\n").errno == 0)
        #expect(device.peer(for: try IPAddress.parse("198.51.100.9")) == nil)
    }
}

extension UAPITests {
    @Test func aPrefixMovesToItsNewestOwnerAndLeavesWithIt() throws {
        let device = try TunnelDevice(interfaceName: "sgm\(UInt32.random(in: 0...UInt32.max) % 100000)")
        let a = X25519.publicKey(X25519.generatePrivateKey()), b = X25519.publicKey(X25519.generatePrivateKey())
        let shared = try IPPrefix.parse("2001:db8:5::/64"), own = try IPPrefix.parse("198.51.100.0/24")
        try device.setPeer(PeerConfiguration(publicKey: a, allowedIPs: [shared, own]))
        try device.setPeer(PeerConfiguration(publicKey: b, allowedIPs: [shared]))
        #expect(device.peer(for: try IPAddress.parse("2001:db8:5::1")) == b)
        let statuses = device.peerStatuses()
        #expect(statuses.first { $0.configuration.publicKey == a }?.configuration.allowedIPs == [own])
        // Updating a with a smaller list drops the rest from the table; removing b takes the prefix with it.
        try device.setPeer(PeerConfiguration(publicKey: a, allowedIPs: []))
        #expect(device.peer(for: try IPAddress.parse("198.51.100.9")) == nil)
        device.removePeer(b)
        #expect(device.peer(for: try IPAddress.parse("2001:db8:5::1")) == nil)
    }
}

private var isRootUser: Bool { getuid() == 0 }
#if canImport(Glibc)
import Glibc
#endif

extension UAPITests {
    @Test func thePeerLimitHoldsAndNamesItself() throws {
        #expect(TunnelDevice.defaultMaximumPeers == 65536)
        let device = try TunnelDevice(interfaceName: "sgp\(UInt32.random(in: 0...UInt32.max) % 100000)", maximumPeers: 64)
        func key(_ i: Int) -> Bytes32 { var b = [UInt8](repeating: 0, count: 32); b[0] = UInt8(i >> 16); b[1] = UInt8(i >> 8 & 0xff); b[2] = UInt8(i & 0xff); b[3] = 1; return Bytes32(b)! }
        for i in 0..<device.maximumPeers { try device.setPeer(PeerConfiguration(publicKey: key(i))) }
        #expect(device.peerStatuses().count == 64)
        #expect(throws: TunnelError.self) { try device.setPeer(PeerConfiguration(publicKey: key(64))) }
        let refused = device.uapiSet("public_key=\(key(65).hex)\n\n")
        #expect(refused.errno == ENOSPC && refused.message?.contains("64 peers, its limit") == true, "\(refused)")
        // Updating a peer that exists still works at the limit.
        try device.setPeer(PeerConfiguration(publicKey: key(7), persistentKeepalive: 25))
    }
}
