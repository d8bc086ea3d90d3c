// Log lines per second, bounded: a daemon's log is written for people, and an event that someone
// outside can cause (handshakes, lease requests, proxy answers) must not let them fill the disk or
// drown the lines that matter. Lines past the budget are counted, and the count is logged once
// lines flow again.
import SixgateSystem
import Foundation

/// A token bucket in front of a log sink: `perSecond` lines a second on average, bursts of up to
/// `burst`. Thread-safe. The clock is injectable for tests.
public final class LogLimiter: @unchecked Sendable {
    /// The defaults of every Sixgate daemon.
    public static let defaultPerSecond = 50.0, defaultBurst = 200.0

    public let perSecond: Double
    public let burst: Double
    let sink: @Sendable (String) -> Void
    let clock: @Sendable () -> Double
    let lock = SystemLock()
    var tokens: Double
    var last: Double
    var suppressed: UInt64 = 0
    /// Lines dropped so far in all.
    public private(set) var suppressedTotal: UInt64 = 0

    public init(perSecond: Double = LogLimiter.defaultPerSecond, burst: Double = LogLimiter.defaultBurst,
                clock: @escaping @Sendable () -> Double = { MonotonicClock.seconds() },
                sink: @escaping @Sendable (String) -> Void) {
        self.perSecond = perSecond; self.burst = burst; self.sink = sink; self.clock = clock
        tokens = burst
        last = clock()
    }

    /// Logs `line` if the budget allows, else counts it. Returns whether it was logged.
    @discardableResult
    public func log(_ line: String) -> Bool {
        var note: UInt64 = 0
        let allowed: Bool = lock.withLock {
            let now = clock()
            tokens = min(burst, tokens + max(0, now - last) * perSecond)
            last = now
            guard tokens >= 1 else { suppressed += 1; suppressedTotal += 1; return false }
            tokens -= 1
            note = suppressed
            suppressed = 0
            return true
        }
        guard allowed else { return false }
        if note > 0 { sink("log: \(note) line(s) suppressed (more than \(Int(perSecond)) a second)") }
        sink(line)
        return true
    }
}
