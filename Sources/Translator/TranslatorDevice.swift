// A translator on a TUN device, as tayga runs: the kernel routes the NAT64 prefix (IPv6) and the
// IPv4 pool or the CLAT's address (IPv4) into the device; each packet read is translated and
// written back, and the kernel routes the result. One thread, one preallocated buffer pair.
import PacketKit
import RouteKit
import Synchronization
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

/// Runs a `Translator` over a TUN interface on a thread of its own.
public final class TranslatorDevice: @unchecked Sendable {
    public let tun: TunDevice
    let translator: Translator
    struct Shared { var running = false; var published = TranslatorStatistics(); var writeErrors: UInt64 = 0 }
    let shared = Mutex(Shared())
    var thread: pthread_t?

    /// Creates (or attaches to) TUN interface `name` in `namespace`. Addresses and routes on it are
    /// the caller's (RouteKit): the prefix and the IPv4 side routed into it, the link up, its MTU.
    public init(name: String, namespace: NetworkNamespace = .current, configuration: TranslatorConfiguration) throws(TranslatorDeviceError) {
        do { translator = try Translator(configuration) } catch { throw TranslatorDeviceError("configuration: \(error)") }
        do { tun = try TunDevice(name: name, namespace: namespace) } catch { throw TranslatorDeviceError("\(error)") }
    }

    deinit { stop() }

    /// The counters so far (published by the device thread after each batch of packets), and
    /// packets the kernel refused to take back.
    public var statistics: (translation: TranslatorStatistics, writeErrors: UInt64) { shared.withLock { ($0.published, $0.writeErrors) } }

    public func start() {
        shared.withLock { $0.running = true }
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            Unmanaged<TranslatorDevice>.fromOpaque(arg!).takeRetainedValue().loop()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        thread = t
    }

    /// Stops the thread (within 100 ms) and waits for it.
    public func stop() {
        let was = shared.withLock { let w = $0.running; $0.running = false; return w }
        if was, let t = thread { pthread_join(t, nil); thread = nil }
    }

    func loop() {
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
        defer { input.deallocate(); scratch.deallocate() }
        let tun = self.tun
        var failed: UInt64 = 0
        while shared.withLock({ $0.running }) {
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            // Up to 256 packets per wakeup, then the counters are published.
            for _ in 0..<256 {
                let n = tun.read(into: input)
                guard n > 0 else { break }
                translator.translate(UnsafeRawBufferPointer(rebasing: input[0..<n]), scratch: scratch) { packet in
                    if !tun.write(packet) { failed += 1 }
                }
            }
            let s = translator.takeStatistics()
            let f = failed
            failed = 0
            shared.withLock { $0.published.add(s); $0.writeErrors += f }
        }
    }
}

public struct TranslatorDeviceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

