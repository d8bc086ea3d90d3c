import Foundation
import SixgateConfig
import SixgateDaemon
import Testing

/// The daemons' log budget: bursts pass up to `burst`, then `perSecond` lines a second; what is
/// dropped is counted and reported once lines flow again. A fake clock, so nothing here is timed.
struct LogLimiterTests {
    final class Box: @unchecked Sendable {
        var now = 100.0
        var lines: [String] = []
    }

    @Test func aFloodIsCutToTheBudgetAndTheDropIsReported() {
        let box = Box()
        let limiter = LogLimiter(perSecond: 10, burst: 20, clock: { box.now }, sink: { box.lines.append($0) })
        var logged = 0
        for i in 0..<1000 where limiter.log("event \(i)") { logged += 1 }
        #expect(logged == 20 && box.lines.count == 20, "the burst, then nothing within the same instant")
        #expect(limiter.suppressedTotal == 980, "every line is either logged or counted")
        box.now += 1   // a second later: ten more, the first of them preceded by the count
        for i in 0..<50 { limiter.log("later \(i)") }
        #expect(box.lines[20] == "log: 980 line(s) suppressed (more than 10 a second)")
        #expect(box.lines.count == 20 + 1 + 10 && box.lines.last == "later 9")
        #expect(limiter.suppressedTotal == 1020)
    }

    @Test func aQuietLogIsUntouched() {
        let box = Box()
        let limiter = LogLimiter(clock: { box.now }, sink: { box.lines.append($0) })
        for i in 0..<500 { box.now += 0.1; limiter.log("tick \(i)") }   // 10 a second, under the default 50
        #expect(box.lines.count == 500 && limiter.suppressedTotal == 0)
    }
}
