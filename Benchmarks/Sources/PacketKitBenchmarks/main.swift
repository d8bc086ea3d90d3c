// PacketKit benchmarks: parse-and-classify of a mixed packet set (Mpps) and the Internet checksum
// on 64/576/1500-byte packets (GB/s), each beside the C reference (CReference, -O2) in the same
// run, with heap allocations counted during the Swift loops.
// Run: swift run -c release --package-path Benchmarks PacketKitBenchmarks [--quick]
import CMallocCounter
import CReference
import PacketKit
import Translator

#if canImport(Glibc)
import Glibc
#endif

let quick = CommandLine.arguments.contains("--quick")
let trials = quick ? 3 : 9

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

var sink: UInt64 = 0

/// Runs the two bodies in alternation, `trials` times each, so both see the same machine
/// conditions (this is a shared VM: timings drift between runs). Returns (best, median, allocations) of each.
func measurePair(_ first: () -> Void, _ second: () -> Void)
    -> (first: (best: Double, median: Double, allocations: UInt), second: (best: Double, median: Double, allocations: UInt)) {
    var t1 = [Double](), t2 = [Double]()
    t1.reserveCapacity(trials)
    t2.reserveCapacity(trials)
    var a1: UInt = 0, a2: UInt = 0
    for _ in 0..<trials {
        var a = sixgate_malloc_count()
        var t = now()
        first()
        t1.append(now() - t)
        a1 += sixgate_malloc_count() - a
        a = sixgate_malloc_count()
        t = now()
        second()
        t2.append(now() - t)
        a2 += sixgate_malloc_count() - a
    }
    t1.sort()
    t2.sort()
    return ((t1[0], t1[trials / 2], a1), (t2[0], t2[trials / 2], a2))
}

/// Fixed-point text for a non-negative value (no Foundation here).
func fmt(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let v = (value * scale).rounded()
    let whole = Int(v / scale)
    guard decimals > 0 else { return "\(whole)" }
    var frac = String(Int(v) - whole * Int(scale))
    while frac.count < decimals { frac = "0" + frac }
    return "\(whole).\(frac)"
}

// MARK: - The mixed packet set

let a = try IPv6Address.parse("2001:db8::4"), b = try IPv6Address.parse("2001:db8:ffff::1")
let v4a = IPv4Address(192, 0, 2, 10), v4b = IPv4Address(203, 0, 113, 1)
let kinds: [PacketRepr] = [
    .ipv6(source: a, destination: b, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 443, flags: [.ack]), payload: [UInt8](repeating: 1, count: 1200))),
    .ipv6(source: b, destination: a, .tcp(TCPRepr(sourcePort: 443, destinationPort: 40000, flags: [.ack], options: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]), payload: [])),
    .ipv6(source: a, destination: b, .udp(UDPRepr(sourcePort: 51820, destinationPort: 51820), payload: [UInt8](repeating: 2, count: 148))),
    .ipv6(source: a, destination: b, .icmpv6(.echoRequest(identifier: 1, sequence: 1, data: [UInt8](repeating: 3, count: 56)))),
    .ipv6(source: a, destination: b.solicitedNodeMulticast, hopLimit: 255, .icmpv6(.neighborSolicitation(target: b, options: [.sourceLinkLayerAddress(MACAddress(rawValue: 0x0200_0000_0a01))]))),
    .ipv6(source: a, destination: b, extensionHeaders: [.hopByHop(options: [5, 2, 0, 0]), .destinationOptions(options: [0x1e, 2, 0, 0])],
          .udp(UDPRepr(sourcePort: 53, destinationPort: 5353), payload: [UInt8](repeating: 4, count: 60))),
    .ipv6(source: a, destination: b, extensionHeaders: [.fragment(offset: 0, moreFragments: true, identification: 7)],
          .udp(UDPRepr(sourcePort: 4000, destinationPort: 4001), payload: [UInt8](repeating: 5, count: 1000))),
    .ipv4(source: v4a, destination: v4b, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 80, flags: [.ack]), payload: [UInt8](repeating: 6, count: 1400))),
    .ipv4(source: v4b, destination: v4a, .tcp(TCPRepr(sourcePort: 80, destinationPort: 40000, flags: [.syn, .ack], options: [2, 4, 5, 0xb4]), payload: [])),
    .ipv4(source: v4a, destination: v4b, .udp(UDPRepr(sourcePort: 5353, destinationPort: 53), payload: [UInt8](repeating: 7, count: 40))),
    .ipv4(source: v4a, destination: v4b, .icmpv4(.echoRequest(identifier: 9, sequence: 1), data: [UInt8](repeating: 8, count: 56))),
    PacketRepr(.ipv4(IPv4Repr(source: v4a, destination: v4b, protocolNumber: .udp, payloadLength: 0, options: [0x94, 4, 0, 0])),
               .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [1, 2, 3])).normalized(),
]
let packetCount = 1024
var arena = [UInt8]()
var offsets = [Int](), lengths = [Int]()
for i in 0..<packetCount {
    let bytes = try kinds[i % kinds.count].emit()
    offsets.append(arena.count)
    lengths.append(bytes.count)
    arena += bytes
    while arena.count % 8 != 0 { arena.append(0) }  // keep packets 8-byte aligned as a NIC ring would
}

@inline(__always) func transportHash(_ proto: IPProtocol, _ p: UnsafeRawBufferPointer) -> UInt64 {
    switch proto {
    case .udp:
        guard let u = try? UDPDatagram(p) else { return 0 }
        return UInt64(u.sourcePort) << 16 | UInt64(u.destinationPort)
    case .tcp:
        guard let t = try? TCPSegment(p) else { return 0 }
        return UInt64(t.sourcePort) << 16 | UInt64(t.destinationPort) | UInt64(t.flags.rawValue) << 32
    case .icmp:
        guard let m = try? ICMPv4Message(p) else { return 0 }
        return UInt64(m.type) << 8 | UInt64(m.code)
    case .icmpv6:
        guard let m = try? ICMPv6Message(p) else { return 0 }
        return UInt64(m.type.rawValue) << 8 | UInt64(m.code)
    default:
        return 1
    }
}

/// PacketKit's parse-and-classify: the same work as `ref_classify`.
@inline(__always) func classify(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    guard bytes.count >= 1 else { return 0 }
    switch bytes[0] >> 4 {
    case 4:
        guard let p = try? IPv4Packet(bytes) else { return 0 }
        let h = 4 << 56 | UInt64(p.protocolNumber.rawValue) << 48 | UInt64(p.source.rawValue ^ p.destination.rawValue)
        if p.fragmentOffset != 0 { return h }
        let t = transportHash(p.protocolNumber, p.payload)
        return t == 0 ? 0 : h ^ t << 8
    case 6:
        guard let p = try? IPv6Packet(bytes) else { return 0 }
        if !p.hasUpperLayerHeader { return 6 << 56 | UInt64(p.upperLayerProtocol.rawValue) << 48 }
        let h = 6 << 56 | UInt64(p.upperLayerProtocol.rawValue) << 48
            | (UInt64(truncatingIfNeeded: p.source.rawValue) ^ UInt64(truncatingIfNeeded: p.destination.rawValue))
        let t = transportHash(p.upperLayerProtocol, p.upperLayer)
        return t == 0 ? 0 : h ^ t << 8
    default:
        return 0
    }
}

print("PacketKit benchmarks (\(quick ? "quick" : "full") run, \(trials) trials each, best and median)")
print("")

let rounds = quick ? 200 : 2000
var swiftAllocations: UInt = 0
arena.withUnsafeBytes { arenaBytes in
    let base = arenaBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
    // Both must agree packet by packet, or the comparison means nothing.
    for i in 0..<packetCount {
        let s = classify(UnsafeRawBufferPointer(start: base + offsets[i], count: lengths[i]))
        let c = ref_classify(base + offsets[i], lengths[i])
        precondition(s == c && s != 0, "classification differs for packet \(i): swift \(s) c \(c)")
    }
    let (swiftTime, cTime) = measurePair({
        var acc: UInt64 = 0
        for _ in 0..<rounds {
            for i in 0..<packetCount {
                acc &+= classify(UnsafeRawBufferPointer(start: base + offsets[i], count: lengths[i]))
            }
        }
        sink &+= acc
    }, {
        var acc: UInt64 = 0
        for _ in 0..<rounds {
            for i in 0..<packetCount { acc &+= ref_classify(base + offsets[i], lengths[i]) }
        }
        sink &+= acc
    })
    swiftAllocations = swiftTime.allocations
    let n = Double(rounds * packetCount)
    print("parse+classify, mixed set of \(kinds.count) kinds (IPv6 + ext headers + TCP/UDP/ICMPv6/NDP, IPv4 + options + TCP/UDP/ICMP):")
    print("  PacketKit  \(fmt(n / swiftTime.best / 1e6, 1)) Mpps (median \(fmt(n / swiftTime.median / 1e6, 1)))  \(fmt(swiftTime.best / n * 1e9, 2)) ns/packet")
    print("  C -O2      \(fmt(n / cTime.best / 1e6, 1)) Mpps (median \(fmt(n / cTime.median / 1e6, 1)))  \(fmt(cTime.best / n * 1e9, 2)) ns/packet")
    print("  time ratio PacketKit/C = \(fmt(swiftTime.best / cTime.best, 2)) (target <= 1.25)")
    print("  heap allocations during \(Int(n) * trials) PacketKit classifications: \(swiftAllocations)")
}

print("")
print("Internet checksum (RFC 1071):")
for size in [64, 576, 1500] {
    let count = 512
    var buffers = [UInt8](repeating: 0, count: size * count)
    var x: UInt64 = 0x9e37_79b9_7f4a_7c15
    for i in 0..<buffers.count { x = x &* 6_364_136_223_846_793_005 &+ 1; buffers[i] = UInt8(truncatingIfNeeded: x >> 56) }
    let reps = quick ? 200 : 2000
    buffers.withUnsafeBytes { raw in
        let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count {
            let s = InternetChecksum.of(UnsafeRawBufferPointer(start: base + i * size, count: size))
            precondition(s == ref_checksum(base + i * size, size), "checksum differs")
        }
        let (st, ct) = measurePair({
            var acc: UInt64 = 0
            for _ in 0..<reps {
                for i in 0..<count { acc &+= UInt64(InternetChecksum.of(UnsafeRawBufferPointer(start: base + i * size, count: size))) }
            }
            sink &+= acc
        }, {
            var acc: UInt64 = 0
            for _ in 0..<reps {
                for i in 0..<count { acc &+= UInt64(ref_checksum(base + i * size, size)) }
            }
            sink &+= acc
        })
        let allocs = st.allocations
        let bytes = Double(size * count * reps)
        let gbs = bytes / st.best / 1e9, cgbs = bytes / ct.best / 1e9
        print("  \(size) B: PacketKit \(fmt(gbs, 2)) GB/s, C -O2 \(fmt(cgbs, 2)) GB/s, time ratio \(fmt(st.best / ct.best, 2)), allocations \(allocs)")
    }
}
print("")
print("NDP proxy answer path: parse and validate a solicitation, write the advertisement frame")
do {
    let mac = MACAddress(rawValue: 0x0200_0000_0a01), asker = MACAddress(rawValue: 0x0200_0000_0b02)
    let target = IPv6Address("2001:db8:5::1234")!, source = IPv6Address("fe80::1")!, ll = IPv6Address("fe80::2")!
    let ns = try! PacketRepr.ipv6(source: source, destination: target.solicitedNodeMulticast, hopLimit: 255,
                                  .icmpv6(.neighborSolicitation(target: target, options: [.sourceLinkLayerAddress(asker)]))).emit()
    let frame = asker.bytes + mac.bytes + [0x86, 0xdd] + ns
    let reps = quick ? 20_000 : 200_000
    var out = [UInt8](repeating: 0, count: 128)
    frame.withUnsafeBytes { raw in
        out.withUnsafeMutableBytes { buffer in
            /// What the responder does per solicitation before the send: views, RFC 4861 §7.1.1 checks, the frame.
            func answerInPlace() -> Int {
                guard let eth = try? EthernetFrame(raw), let ip = try? IPv6Packet(eth.payload),
                      (try? NDPValidation.validate(ip)) == .neighborSolicitation,
                      let m = try? ICMPv6Message(ip.upperLayer), let s = try? NeighborSolicitation(m) else { return 0 }
                let to = s.options.first(.sourceLinkLayerAddress)?.linkLayerAddress ?? eth.source
                return (try? NDPFrame.ethernetNeighborAdvertisement(into: buffer, destinationMAC: to, sourceMAC: mac, source: ll, destination: ip.source,
                                                                    flags: [.router, .solicited], target: s.target, targetLinkLayer: mac)) ?? 0
            }
            /// The same with the value-type builder (the responder's answer path until this change): the anchor.
            func answerWithRepr() -> Int {
                guard let eth = try? EthernetFrame(raw), let ip = try? IPv6Packet(eth.payload),
                      (try? NDPValidation.validate(ip)) == .neighborSolicitation,
                      let m = try? ICMPv6Message(ip.upperLayer), let s = try? NeighborSolicitation(m) else { return 0 }
                let to = s.options.first(.sourceLinkLayerAddress)?.linkLayerAddress ?? eth.source
                guard let bytes = try? PacketRepr.ipv6(source: ll, destination: ip.source, hopLimit: 255,
                                                       .icmpv6(.neighborAdvertisement(flags: [.router, .solicited], target: s.target,
                                                                                      options: [.targetLinkLayerAddress(mac)]))).emit() else { return 0 }
                let framed = to.bytes + mac.bytes + [0x86, 0xdd] + bytes
                return framed.count
            }
            precondition(answerInPlace() == 86 && answerWithRepr() == 86, "answer sizes")
            let (inPlace, repr) = measurePair({
                var acc = 0
                for _ in 0..<reps { acc &+= answerInPlace() }
                sink &+= UInt64(acc)
            }, {
                var acc = 0
                for _ in 0..<reps { acc &+= answerWithRepr() }
                sink &+= UInt64(acc)
            })
            let rate = Double(reps) / inPlace.best / 1e6, anchor = Double(reps) / repr.best / 1e6
            print("  in place \(fmt(rate, 2)) M answers/s, \(inPlace.allocations) allocations; PacketRepr (anchor, same run) \(fmt(anchor, 2)) M/s, \(repr.allocations) allocations; speedup \(fmt(repr.best / inPlace.best, 2))x")
        }
    }
}
// MARK: - Translator (RFC 7915) per packet

print("")
print("Translator: a mixed set both ways (TCP 1400/1200, TCP SYN, UDP, ICMP echo), translate into a scratch buffer")
do {
    let client6 = try IPv6Address.parse("2001:db8:1::10"), server6 = try IPv6Address.parse("2001:db8:64::cb00:7105")
    let client4 = IPv4Address(192, 0, 2, 10), server4 = IPv4Address(203, 0, 113, 5)
    let translator = try Translator(TranslatorConfiguration(prefix: IPv6Prefix("2001:db8:64::/96")!,
                                                            explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: client6)]))
    let set: [[UInt8]] = try [
        PacketRepr.ipv6(source: client6, destination: server6, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 443, flags: [.ack]), payload: [UInt8](repeating: 1, count: 1200))).emit(),
        PacketRepr.ipv4(source: server4, destination: client4, .tcp(TCPRepr(sourcePort: 443, destinationPort: 40000, flags: [.ack]), payload: [UInt8](repeating: 2, count: 1400))).emit(),
        PacketRepr.ipv6(source: client6, destination: server6, .tcp(TCPRepr(sourcePort: 40001, destinationPort: 443, flags: [.syn], options: [2, 4, 5, 0xa0]), payload: [])).emit(),
        PacketRepr.ipv4(source: server4, destination: client4, .udp(UDPRepr(sourcePort: 53, destinationPort: 5353), payload: [UInt8](repeating: 3, count: 120))).emit(),
        PacketRepr.ipv6(source: client6, destination: server6, .icmpv6(.echoRequest(identifier: 1, sequence: 1, data: [UInt8](repeating: 4, count: 56)))).emit(),
        PacketRepr.ipv4(source: server4, destination: client4, .icmpv4(.echoReply(identifier: 1, sequence: 1), data: [UInt8](repeating: 4, count: 56))).emit(),
    ]
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
    defer { scratch.deallocate() }
    let reps = quick ? 50_000 : 400_000
    var produced = 0
    for p in set { p.withUnsafeBytes { _ = translator.translate($0, scratch: scratch) { _ in produced += 1 } } }
    precondition(produced == set.count, "every packet of the set translates")
    let (xlat, copy) = measurePair({
        var acc = 0
        for i in 0..<reps { set[i % set.count].withUnsafeBytes { translator.translate($0, scratch: scratch) { acc &+= $0.count } } }
        sink &+= UInt64(acc)
    }, {
        // The anchor: copying each packet into the same buffer, the least any translator must do.
        var acc = 0
        for i in 0..<reps { set[i % set.count].withUnsafeBytes { scratch.copyMemory(from: $0); acc &+= $0.count } }
        sink &+= UInt64(acc)
    })
    let rate = Double(reps) / xlat.best / 1e6, anchor = Double(reps) / copy.best / 1e6
    print("  translate \(fmt(rate, 2)) M packets/s, \(xlat.allocations) allocations in \(trials * reps) packets; copy only (anchor, same run) \(fmt(anchor, 2)) M/s; translate costs \(fmt(xlat.best / copy.best, 1))x a copy")
    // TCP super-packets as an offload TUN device hands them over (64,000 bytes, partial checksum,
    // segments of 1440): one translation per ~45 segments.
    var supers: [[UInt8]] = try [
        PacketRepr.ipv6(source: client6, destination: server6, .tcp(TCPRepr(sourcePort: 40000, destinationPort: 443, flags: [.ack]), payload: [UInt8](repeating: 5, count: 64_000))).emit(),
        PacketRepr.ipv4(source: server4, destination: client4, .tcp(TCPRepr(sourcePort: 443, destinationPort: 40000, flags: [.ack]), payload: [UInt8](repeating: 6, count: 64_000))).emit(),
    ]
    supers[1][6] |= 0x40   // DF, as TCP sends
    supers[1][10] = 0; supers[1][11] = 0
    let headerSum = supers[1].withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
    supers[1][10] = UInt8(headerSum >> 8); supers[1][11] = UInt8(headerSum & 0xff)
    let superReps = quick ? 2_000 : 20_000
    var superProduced = 0
    for p in supers { p.withUnsafeBytes { _ = translator.translate(segmented: $0, segmentSize: 1440, scratch: scratch) { _, s in superProduced += s > 0 ? 1 : 0 } } }
    precondition(superProduced == supers.count, "every super-packet translates as one")
    let (sx, sc) = measurePair({
        var acc = 0
        for i in 0..<superReps { supers[i & 1].withUnsafeBytes { translator.translate(segmented: $0, segmentSize: 1440, scratch: scratch) { p, _ in acc &+= p.count } } }
        sink &+= UInt64(acc)
    }, {
        var acc = 0
        for i in 0..<superReps { supers[i & 1].withUnsafeBytes { scratch.copyMemory(from: $0); acc &+= $0.count } }
        sink &+= UInt64(acc)
    })
    let gbytes = Double(superReps) * 64_060 / 1e9
    print("  super-packets (64 KB, segmentation offload): translate \(fmt(gbytes / sx.best, 2)) GB/s, \(sx.allocations) allocations in \(trials * superReps) super-packets; copy only (anchor, same run) \(fmt(gbytes / sc.best, 2)) GB/s; \(fmt(sx.best / sc.best, 2))x a copy")
} catch {
    print("  translator setup failed: \(error)")
}
print("")
print("(sink \(sink & 0xff))")
