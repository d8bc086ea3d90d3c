// A translator on a TUN device, as tayga runs: the kernel routes the NAT64 prefix (IPv6) and the
// IPv4 pool or the CLAT's address (IPv4) into the device; each packet read is translated and
// written back, and the kernel routes the result. One thread, one preallocated buffer pair.
//
// Unlike tayga, the device asks for the TUN offloads (IFF_VNET_HDR, TUN_F_CSUM | TSO4 | TSO6): TCP
// then arrives as super-packets of up to 64 KiB with a partial checksum, is translated once as a
// whole (`Translator.translate(segmented:)`) and written back as one, which the kernel segments
// (or hands whole to the next hop's TSO). One read and one write move up to ~45 segments, so the
// per-packet system-call cost that bounds a TUN translator is paid once per super-packet.
import PacketKit
import RouteKit
import SixgateSystem
import Synchronization
import SixgateIO
#if canImport(Glibc)
import Glibc
#endif

/// Runs a `Translator` over a TUN interface on a thread of its own.
public final class TranslatorDevice: @unchecked Sendable {
    public let tun: TunDevice
    var translator: Translator
    struct Shared {
        var running = false; var published = TranslatorStatistics(); var writeErrors: UInt64 = 0
        /// A translator with new settings, taken up by the device thread between batches.
        var replacement: Translator?
        var configuration: TranslatorConfiguration
    }
    let shared: Mutex<Shared>
    var thread: pthread_t?

    /// Creates (or attaches to) TUN interface `name` in `namespace`. Addresses and routes on it are
    /// the caller's (RouteKit): the prefix and the IPv4 side routed into it, the link up, its MTU.
    /// `offload` (the default) asks for checksum and TCP segmentation offload and falls back to
    /// plain packets where the kernel has none; `tun.offload` says which it got.
    public init(name: String, namespace: NetworkNamespace = .current, configuration: TranslatorConfiguration,
                offload: Bool = true) throws(TranslatorDeviceError) {
        do { translator = try Translator(configuration) } catch { throw TranslatorDeviceError("configuration: \(error)") }
        shared = Mutex(Shared(configuration: translator.configuration))
        if offload, let t = try? TunDevice(name: name, namespace: namespace, offload: true) {
            tun = t
        } else {
            do { tun = try TunDevice(name: name, namespace: namespace) } catch { throw TranslatorDeviceError("\(error)") }
        }
    }

    deinit { stop() }

    /// The counters so far (published by the device thread after each batch of packets), and
    /// packets the kernel refused to take back.
    public var statistics: (translation: TranslatorStatistics, writeErrors: UInt64) { shared.withLock { ($0.published, $0.writeErrors) } }

    /// The settings in use (the last `update`'s, once the device thread has taken them up).
    public var configuration: TranslatorConfiguration { shared.withLock { $0.configuration } }

    /// Replaces the settings (an explicit address mapping added or removed as clients come and go)
    /// without stopping: the device thread switches between two batches, no packet is lost and the
    /// counters carry on. Invalid settings are refused and the old ones stay.
    public func update(configuration: TranslatorConfiguration) throws(TranslatorConfigurationError) {
        let next = try Translator(configuration)
        shared.withLock { $0.replacement = next; $0.configuration = next.configuration }
    }

    public func start() {
        shared.withLock { $0.running = true }
        thread = SystemThread.start(name: "sg-xlat-" + tun.name) { [self] in self.loop() }
    }

    /// Stops the thread (within 100 ms) and waits for it.
    public func stop() {
        let was = shared.withLock { let w = $0.running; $0.running = false; return w }
        if was, let t = thread { pthread_join(t, nil); thread = nil }
    }

    func loop() {
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.size + 65_536 + 64, alignment: 16)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
        // Whole packets go out behind an all-zero header (checksums complete, no segmentation);
        // super-packets behind one written for each.
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.size, alignment: 16)
        let noOffload = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.size, alignment: 16)
        noOffload.initializeMemory(as: UInt8.self, repeating: 0)
        defer { input.deallocate(); scratch.deallocate(); header.deallocate(); noOffload.deallocate() }
        let tun = self.tun
        var failed: UInt64 = 0
        while true {
            // New settings are taken up before the next batch (the last one's counters are published).
            let (running, next) = shared.withLock { s -> (Bool, Translator?) in
                defer { s.replacement = nil }
                return (s.running, s.replacement)
            }
            if let next { translator = next }
            guard running else { break }
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            // Up to 256 packets per wakeup, then the counters are published.
            for _ in 0..<256 {
                let n = tun.read(into: input)
                guard n > 0 else { break }
                if !tun.offload {
                    translator.translate(UnsafeRawBufferPointer(rebasing: input[0..<n]), scratch: scratch) { packet in
                        if !tun.write(packet) { failed += 1 }
                    }
                    continue
                }
                guard n > VirtioNetHeader.size else { translator.statistics.dropped[.malformed] += 1; continue }   // no packet behind the header
                let h = VirtioNetHeader(UnsafeRawBufferPointer(input))
                let packet = UnsafeMutableRawBufferPointer(rebasing: input[VirtioNetHeader.size..<n])
                if h.segmentationType & 0x7f == VirtioNetHeader.Segmentation.none.rawValue {
                    // A single packet: a partial checksum is completed here, then the usual path.
                    if h.flags & VirtioNetHeader.needsChecksum != 0 {
                        InternetChecksum.completePartial(packet, start: Int(h.checksumStart), offset: Int(h.checksumOffset))
                    }
                    translator.translate(UnsafeRawBufferPointer(packet), scratch: scratch) { out in
                        if !tun.write(header: UnsafeRawBufferPointer(noOffload), packet: out) { failed += 1 }
                    }
                } else {
                    // A TCP super-packet (only TSO4/TSO6 are offered, always with a partial checksum).
                    let tcp = h.flags & VirtioNetHeader.needsChecksum != 0
                        && (h.segmentationType == VirtioNetHeader.Segmentation.tcp4.rawValue || h.segmentationType == VirtioNetHeader.Segmentation.tcp6.rawValue)
                    translator.translate(segmented: UnsafeRawBufferPointer(packet), segmentSize: tcp ? Int(h.segmentSize) : 0, scratch: scratch) { out, segment in
                        var h = noOffload
                        if segment > 0 { Self.header(for: out, segmentSize: segment).write(to: header); h = header }
                        if !tun.write(header: UnsafeRawBufferPointer(h), packet: out) { failed += 1 }
                    }
                }
            }
            let s = translator.takeStatistics()
            let f = failed
            failed = 0
            shared.withLock { $0.published.add(s); $0.writeErrors += f }
        }
    }
}

extension TranslatorDevice {
    /// The header for a TCP super-packet the translator emitted (IPv4 without options, IPv6 without
    /// extension headers): the kernel completes its checksum and cuts it into segments.
    @inline(__always)
    static func header(for packet: UnsafeRawBufferPointer, segmentSize: Int) -> VirtioNetHeader {
        let v4 = packet[0] >> 4 == 4
        let ipLength = v4 ? 20 : 40
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.segmentationType = (v4 ? VirtioNetHeader.Segmentation.tcp4 : .tcp6).rawValue
        h.headerLength = UInt16(ipLength + Int(packet[ipLength + 12] >> 4) * 4)
        h.segmentSize = UInt16(segmentSize)
        h.checksumStart = UInt16(ipLength)
        h.checksumOffset = 16
        return h
    }
}

public struct TranslatorDeviceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

